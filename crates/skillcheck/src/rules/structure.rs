//! Structure: SKILL.md present, every file readable and reachable, references one level deep.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;

use crate::diag::{Diagnostic, Report, SkillStats};
use crate::engine::{Context, Dest, Sink};
use crate::registry::{BEST, SPEC, ZIP, declare_rules};
use crate::source::{RejectReason, glob_match, must_not_ship};
use crate::text::{join_normalized, parent};

declare_rules! {
    SKILL_MD_MISSING = "STR001", "skill-md-missing", Error, on, fixable: false,
        summary: "the skill has no SKILL.md",
        why: "SKILL.md (exact case) is the entry point of every skill.",
        example: "my-skill/skill.md",
        fix: "Name the entry file SKILL.md.",
        source: SPEC;
    ORPHAN_FILE = "STR002", "orphan-file", Warning, on, fixable: false,
        summary: "a file under references/, assets/ or scripts/ is not reachable from SKILL.md, nor named by a file that is",
        why: "The agent discovers files only through SKILL.md and what it links; an unreachable file is dead weight in every package.",
        example: "references/old-notes.md that no file links",
        fix: "Link it (a Markdown link, its path or a glob in backticks, or a folder that contains it) from SKILL.md or a file reachable from it, or name it in a script that is; or delete it.",
        source: BEST;
    DEEP_REFERENCE = "STR003", "deep-reference-chain", Warning, on, fixable: false,
        summary: "a Markdown file is reachable only through another reference, more than one level from SKILL.md",
        why: "Agents may only preview files that are referenced from references; keep references one level deep.",
        example: "SKILL.md -> references/a.md -> references/b.md",
        fix: "Link the file directly from SKILL.md.",
        source: BEST;
    UNREADABLE_FILE = "STR004", "unreadable-file", Error, on, fixable: false,
        summary: "a file cannot be read or is not a regular file (fifo, device, socket), too large, or a Markdown file is not UTF-8",
        why: "Such a file cannot be packaged or read by the agent.",
        example: "a named pipe in assets/",
        fix: "Remove the file, or replace it with a regular UTF-8 file.",
        source: SPEC;
    PACKAGE_INVALID = "STR005", "package-invalid", Error, on, fixable: false,
        summary: "a `.skill`/`.zip` package is corrupt or unsafe",
        why: "Packages with absolute paths, `..`, several top folders, duplicate names, wrong sizes or huge contents are rejected so that nothing unsafe is ever read or extracted.",
        example: "a zip with an entry `../../etc/cron.d/x`",
        fix: "Rebuild the package with `skillcheck pack`.",
        source: ZIP;
}

const REACHABLE_DIRS: [&str; 3] = ["references/", "assets/", "scripts/"];

pub fn check(ctx: &Context, sink: &mut Sink) {
    unreadable(ctx, sink);
    if ctx.skill_md().is_some() {
        reachability(ctx, sink);
    } else if ctx.source.file("SKILL.md").is_none() {
        let help = ctx
            .source
            .files
            .iter()
            .find(|f| f.path.eq_ignore_ascii_case("SKILL.md"))
            .map_or_else(
                || "create SKILL.md with a frontmatter and instructions".to_string(),
                |f| {
                    format!(
                        "rename `{}` to `SKILL.md` (the name is case-sensitive)",
                        f.path
                    )
                },
            );
        sink.emit(
            &SKILL_MD_MISSING,
            Diagnostic::new(&SKILL_MD_MISSING, "", "the skill has no SKILL.md").help(help),
        );
    }
}

fn unreadable(ctx: &Context, sink: &mut Sink) {
    for rejected in &ctx.source.rejected {
        // A symlink out of the skill is a link that escapes: the links family reports it.
        if matches!(rejected.reason, RejectReason::SymlinkOutside { .. }) {
            continue;
        }
        sink.emit(
            &UNREADABLE_FILE,
            Diagnostic::new(
                &UNREADABLE_FILE,
                &rejected.path,
                rejected.reason.to_string(),
            )
            .help("remove it or replace it with a regular file"),
        );
    }
    for (path, offset) in &ctx.not_utf8 {
        sink.emit(
            &UNREADABLE_FILE,
            Diagnostic::new(
                &UNREADABLE_FILE,
                *path,
                format!("Markdown file is not UTF-8 (invalid byte at offset {offset})"),
            )
            .help("save the file as UTF-8"),
        );
    }
}

/// A package that could not be read safely: one error finding, not an I/O failure.
pub fn package_failure(path: &Path, message: &str) -> Report {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Report {
        skill: name,
        root: path.display().to_string(),
        diagnostics: vec![
            Diagnostic::new(
                &PACKAGE_INVALID,
                "",
                format!("cannot read package: {message}"),
            )
            .help("rebuild it with `skillcheck pack`; nothing was extracted"),
        ],
        stats: SkillStats::default(),
    }
}

/// How a Markdown file was first reached: its depth, and the file and line that linked it
/// (`None` when it was reached through a folder or a glob, which say nothing of depth).
type Reach = (usize, Option<(String, usize)>);

struct Walk<'c> {
    ctx: &'c Context<'c>,
    reached: HashSet<String>,
    depth_of: BTreeMap<String, Reach>,
    queue: VecDeque<(String, usize)>,
}

impl Walk<'_> {
    fn visit(&mut self, path: &str, depth: usize, parent: Option<(&str, usize)>) {
        let Some(f) = self.ctx.source.file(path) else {
            return;
        };
        // Most visits reach a file again: no copy of its path then.
        if !self.reached.contains(path) {
            self.reached.insert(f.path.clone());
        }
        if self.ctx.files.contains_key(path) && !self.depth_of.contains_key(path) {
            let parent = parent.map(|(from, line)| (from.to_string(), line));
            self.depth_of.insert(path.to_string(), (depth, parent));
            self.queue.push_back((path.to_string(), depth));
        }
    }

    /// Visits every file whose path `matches`, as reached through a folder or a glob.
    fn visit_all(&mut self, depth: usize, matches: impl Fn(&str) -> bool) -> bool {
        let matched: Vec<&str> = self
            .ctx
            .source
            .files
            .iter()
            .map(|f| f.path.as_str())
            .filter(|p| matches(p))
            .collect();
        for p in &matched {
            self.visit(p, depth, None);
        }
        !matched.is_empty()
    }

    fn visit_dir(&mut self, dir: &str, depth: usize) {
        let prefix = format!("{dir}/");
        self.visit_all(depth, |p| p.starts_with(&prefix));
    }

    fn visit_glob(&mut self, from: &str, glob: &str, depth: usize) {
        let glob = glob.trim_start_matches("./");
        for base in [parent(from), ""] {
            let Some(pattern) = join_normalized(base, glob) else {
                continue;
            };
            // The literal text around the wildcards must frame the path: a cheap test first.
            let head = &pattern[..pattern.find(['*', '?']).unwrap_or(pattern.len())];
            let tail = &pattern[pattern.rfind(['*', '?']).map_or(pattern.len(), |i| i + 1)..];
            // Anchored at the skill root, as written.
            let anchored = format!("/{pattern}");
            let frames = |p: &str| p.starts_with(head) && p.ends_with(tail);
            if self.visit_all(depth, |p| frames(p) && glob_match(&anchored, p)) {
                return;
            }
        }
    }
}

fn reachability(ctx: &Context, sink: &mut Sink) {
    let mut walk = Walk {
        ctx,
        reached: HashSet::new(),
        depth_of: BTreeMap::new(),
        queue: VecDeque::new(),
    };
    // File name → its path when exactly one file has it (`None` when several do).
    let mut by_name: HashMap<&str, Option<&str>> = HashMap::new();
    for f in &ctx.source.files {
        let name = f.path.rsplit('/').next().unwrap_or(&f.path);
        by_name
            .entry(name)
            .and_modify(|p| *p = None)
            .or_insert(Some(f.path.as_str()));
    }
    walk.visit("SKILL.md", 0, None);
    while let Some((path, depth)) = walk.queue.pop_front() {
        let Some(file) = ctx.files.get(path.as_str()) else {
            continue;
        };
        let links = file
            .links
            .iter()
            .zip(&file.doc.links)
            .map(|(o, l)| (&o.dest, l.line));
        let mentions = file
            .code_paths
            .iter()
            .zip(&file.doc.code_paths)
            .map(|(d, m)| (d, m.line));
        for (dest, line) in links.chain(mentions) {
            match dest {
                Dest::File(p) | Dest::RootRelative(p) => {
                    walk.visit(p, depth + 1, Some((&path, line)));
                }
                Dest::Dir(d) if !d.is_empty() => walk.visit_dir(d, depth + 1),
                _ => {}
            }
        }
        for mention in &file.doc.code_paths {
            if mention.token.contains('*') {
                walk.visit_glob(&path, &mention.token, depth + 1);
            } else if !mention.token.contains('/') {
                // A bare file name in a command (`cd scripts && python fill.py`): the one
                // file of the skill with that name.
                if let Some(Some(p)) = by_name.get(mention.token.as_str()) {
                    walk.visit(p, depth + 1, None);
                }
            }
        }
    }
    named_by_scripts(ctx, &mut walk.reached);

    for f in &ctx.source.files {
        if REACHABLE_DIRS.iter().any(|d| f.path.starts_with(d))
            && !walk.reached.contains(f.path.as_str())
            && must_not_ship(&f.path).is_none()
        {
            sink.emit(
                &ORPHAN_FILE,
                Diagnostic::new(
                    &ORPHAN_FILE,
                    &f.path,
                    "not reachable from SKILL.md: no link, backticked path or glob leads to it or to its folder, and no reachable script names it",
                )
                .help("link it from SKILL.md (or from a file SKILL.md links), name its folder, or delete it"),
            );
        }
    }
    for (path, (depth, parent)) in &walk.depth_of {
        let Some((from, line)) = parent else { continue };
        if *depth < 2 || path.starts_with("assets/") {
            continue;
        }
        let (source_line, col) = ctx
            .files
            .get(from.as_str())
            .map(|p| {
                let r = p.index.line_range(p.text, *line);
                let col = p.text[r].chars().take_while(|c| c.is_whitespace()).count() + 1;
                (p.source_line(*line, col, 0), col)
            })
            .unwrap_or((None, 1));
        sink.emit(
            &DEEP_REFERENCE,
            Diagnostic::new(
                &DEEP_REFERENCE,
                from.as_str(),
                format!(
                    "`{path}` is {depth} links away from SKILL.md (reached only through `{from}`)"
                ),
            )
            .at(*line, col)
            .source_line(source_line)
            .help(format!("link `{path}` directly from SKILL.md")),
        );
    }
}

/// Files that reached scripts and data files name: a module a Python script imports, a
/// schema it reads, a tarball a shell script unpacks. Also a package's `__init__.py` once
/// a module beside it is reached. Repeats until nothing new is reached.
fn named_by_scripts(ctx: &Context, reached: &mut HashSet<String>) {
    let mut scanned: HashSet<String> = HashSet::new();
    loop {
        let texts: Vec<(&str, &str)> = ctx
            .source
            .files
            .iter()
            .filter(|f| reached.contains(&f.path) && !scanned.contains(&f.path) && !f.is_markdown())
            .filter_map(|f| Some((f.path.as_str(), f.text()?)))
            .collect();
        let mut new: Vec<String> = Vec::new();
        // Folders holding a reached Python module: their `__init__.py` runs on import.
        let packages: HashSet<&str> = ctx
            .source
            .files
            .iter()
            .filter(|f| f.path.ends_with(".py") && reached.contains(&f.path))
            .map(|f| parent(&f.path))
            .collect();
        for f in &ctx.source.files {
            if reached.contains(&f.path) || !REACHABLE_DIRS.iter().any(|d| f.path.starts_with(d)) {
                continue;
            }
            let name = f.path.rsplit('/').next().unwrap_or(&f.path);
            let stem = name.strip_suffix(".py");
            let named = texts
                .iter()
                .any(|(_, text)| text.contains(name) || stem.is_some_and(|s| imports(text, s)));
            let init = name == "__init__.py" && packages.contains(parent(&f.path));
            if named || init {
                new.push(f.path.clone());
            }
        }
        scanned.extend(texts.iter().map(|(p, _)| p.to_string()));
        if new.is_empty() {
            return;
        }
        reached.extend(new);
    }
}

/// `import stem`, `from stem import`, `from .stem import`, `from pkg.stem import`.
fn imports(text: &str, stem: &str) -> bool {
    text.match_indices(stem).any(|(i, _)| {
        let before = &text[..i];
        let after = &text[i + stem.len()..];
        let word_end = !after
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let line = before.rsplit('\n').next().unwrap_or(before).trim_start();
        word_end
            && (line.starts_with("import ") || line.starts_with("from "))
            && before
                .chars()
                .last()
                .is_some_and(|c| matches!(c, ' ' | '.' | ','))
    })
}

#[cfg(test)]
mod tests {
    use super::imports;

    #[test]
    fn python_imports() {
        assert!(imports("import os\nimport helpers\n", "helpers"));
        assert!(imports("from .helpers import x\n", "helpers"));
        assert!(imports("from pkg.helpers import x\n", "helpers"));
        assert!(imports("import os, helpers\n", "helpers"));
        assert!(!imports("import helpers_v2\n", "helpers"));
        assert!(!imports("# helpers are nice\n", "helpers"));
    }
}
