//! `lint_skill`: every rule, in one pass over a [`SkillSource`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::config::{Config, Target};
use crate::diag::{Coverage, Diagnostic, Edit, Report, Severity, SkillStats, SourceLine};
use crate::markdown::{self, LineIndex, LinkKind, MarkdownDoc};
use crate::rules::{self, Rule};
use crate::source::{Origin, RejectReason, SkillSource};
use crate::text::{self, join_normalized, nearest, parent, percent_decode};
use crate::{frontmatter, hygiene};

/// Per-run choices that are not part of a skill's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Overrides the config's target (`--target`).
    pub target: Option<Target>,
}

/// A Markdown file of the skill, parsed once.
pub(crate) struct Parsed<'a> {
    pub text: &'a str,
    pub index: LineIndex,
    pub doc: MarkdownDoc,
}

/// Collects diagnostics, applying the config's severities.
pub(crate) struct Sink<'c> {
    config: &'c Config,
    pub diagnostics: Vec<Diagnostic>,
}

impl Sink<'_> {
    pub fn emit(&mut self, rule: &Rule, diagnostic: Diagnostic) {
        if let Some(severity) = self.config.severity(rule) {
            self.diagnostics.push(Diagnostic {
                severity,
                ..diagnostic
            });
        }
    }
}

/// The line of `text` at `line`, highlighted from character column `col` for `len` chars
/// (to the end of the line when `len` is 0).
pub(crate) fn source_line(
    text: &str,
    index: &LineIndex,
    line: usize,
    col: usize,
    len: usize,
) -> Option<SourceLine> {
    if line == 0 || line > index.line_count() {
        return None;
    }
    let range = index.line_range(text, line);
    let line_text = &text[range];
    let start = line_text
        .char_indices()
        .nth(col.saturating_sub(1))
        .map_or(line_text.len(), |(i, _)| i);
    let end = if len == 0 {
        line_text.len()
    } else {
        line_text[start..]
            .char_indices()
            .nth(len)
            .map_or(line_text.len(), |(i, _)| start + i)
    };
    Some(SourceLine {
        text: line_text.to_string(),
        highlight: start..end.max(start),
    })
}

/// Lints one skill.
pub fn lint_skill(source: &SkillSource, config: &Config, options: &Options) -> Report {
    let target = options.target.unwrap_or(config.target);
    let mut sink = Sink {
        config,
        diagnostics: Vec::new(),
    };
    let mut stats = SkillStats {
        files: source.files.len(),
        bytes: source.total_bytes(),
        ..SkillStats::default()
    };

    for rejected in &source.rejected {
        let (rule, help) = match &rejected.reason {
            RejectReason::SymlinkOutside { .. } => (
                &rules::LINK_ESCAPES,
                "copy the file into the skill instead of linking to it",
            ),
            _ => (
                &rules::UNREADABLE_FILE,
                "remove it or replace it with a regular file",
            ),
        };
        sink.emit(
            rule,
            Diagnostic::new(rule, &rejected.path, rejected.reason.to_string()).help(help),
        );
    }

    let mut parsed: HashMap<&str, Parsed> = HashMap::new();
    for file in source.files.iter().filter(|f| f.is_markdown()) {
        match std::str::from_utf8(&file.bytes) {
            Ok(text) => {
                let index = LineIndex::new(text);
                let doc = markdown::parse(text, &index);
                parsed.insert(&file.path, Parsed { text, index, doc });
            }
            Err(e) => sink.emit(
                &rules::UNREADABLE_FILE,
                Diagnostic::new(
                    &rules::UNREADABLE_FILE,
                    &file.path,
                    format!(
                        "Markdown file is not UTF-8 (invalid byte at offset {})",
                        e.valid_up_to()
                    ),
                )
                .help("save the file as UTF-8"),
            ),
        }
    }

    match parsed.get("SKILL.md") {
        Some(skill_md) => {
            frontmatter::check(source, skill_md, target, config, &mut sink, &mut stats);
        }
        None if source.file("SKILL.md").is_none() => {
            let help = source
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
                &rules::SKILL_MD_MISSING,
                Diagnostic::new(&rules::SKILL_MD_MISSING, "", "the skill has no SKILL.md")
                    .help(help),
            );
        }
        None => {}
    }

    let rejected: HashSet<&str> = source.rejected.iter().map(|r| r.path.as_str()).collect();
    let resolver = Resolver {
        source,
        parsed: &parsed,
        rejected: &rejected,
    };
    let mut paths: Vec<&&str> = parsed.keys().collect();
    paths.sort();
    for path in paths {
        let file = &parsed[*path];
        check_links(path, file, &resolver, &mut sink);
        check_code_blocks(path, file, &mut sink);
        check_toc(path, file, config, &mut sink);
        coverage(path, file, &resolver, &mut sink, &mut stats);
    }
    required_items(&parsed, config, &mut sink, &mut stats);
    if parsed.contains_key("SKILL.md") {
        reachability(&resolver, &mut sink);
    }
    hygiene::check(source, target, &mut sink);

    let mut diagnostics = sink.diagnostics;
    diagnostics.sort_by(|a, b| {
        (a.file.as_str(), a.line, a.col, a.code).cmp(&(b.file.as_str(), b.line, b.col, b.code))
    });
    diagnostics.dedup();
    Report {
        skill: source.name.clone(),
        root: match &source.origin {
            Origin::Dir(p) => {
                let shown = p.display().to_string();
                shown
                    .strip_prefix("./")
                    .map(str::to_string)
                    .unwrap_or(shown)
            }
            Origin::Package(p) => format!("{}!/{}", p.display(), source.name),
        },
        diagnostics,
        stats,
    }
}

/// What a link destination points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dest {
    File(String),
    Dir(String),
    Escapes(&'static str),
    CaseMismatch(String),
    Missing(String),
    /// A path that was rejected while reading (already reported).
    Rejected,
}

pub(crate) struct Resolver<'a> {
    pub source: &'a SkillSource,
    pub parsed: &'a HashMap<&'a str, Parsed<'a>>,
    pub rejected: &'a HashSet<&'a str>,
}

fn is_external(dest: &str) -> bool {
    if dest.starts_with("//") {
        return true;
    }
    let scheme_end = dest.find(':');
    scheme_end.is_some_and(|i| {
        i > 0
            && dest[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && dest.as_bytes()[0].is_ascii_alphabetic()
    })
}

impl Resolver<'_> {
    /// Resolves the path part of a destination written in `from`.
    pub fn resolve(&self, from: &str, path_part: &str) -> Dest {
        if path_part.starts_with('/') || path_part.starts_with('\\') {
            return Dest::Escapes("an absolute path");
        }
        let decoded = percent_decode(path_part);
        let Some(path) = join_normalized(parent(from), &decoded) else {
            return Dest::Escapes("`..` climbs out of the skill folder");
        };
        if path.is_empty() {
            return Dest::Dir(path);
        }
        if self.source.file(&path).is_some() {
            return Dest::File(path);
        }
        if self.source.is_dir(&path) {
            return Dest::Dir(path);
        }
        if self.rejected.contains(path.as_str()) {
            return Dest::Rejected;
        }
        let lower = path.to_lowercase();
        if let Some(f) = self
            .source
            .files
            .iter()
            .find(|f| f.path.to_lowercase() == lower)
        {
            return Dest::CaseMismatch(f.path.clone());
        }
        Dest::Missing(path)
    }

    /// Suggests an existing path close to `missing`, written relative to `from`'s folder:
    /// the same file name elsewhere, or a near spelling in the same folder.
    fn did_you_mean(&self, from: &str, missing: &str) -> Option<String> {
        let (dir, name) = missing.rsplit_once('/').unwrap_or(("", missing));
        let paths = || self.source.files.iter().map(|f| f.path.as_str());
        let same_name: Vec<&str> = paths()
            .filter(|p| p.rsplit('/').next() == Some(name))
            .collect();
        let found = if same_name.len() == 1 {
            Some(same_name[0])
        } else {
            let siblings: Vec<&str> = paths().filter(|p| parent(p) == dir).collect();
            let limit = (name.chars().count() / 4).clamp(1, 3);
            siblings
                .into_iter()
                .map(|p| {
                    (
                        text::edit_distance(name, p.rsplit('/').next().unwrap_or(p)),
                        p,
                    )
                })
                .filter(|&(d, _)| d <= limit)
                .min()
                .map(|(_, p)| p)
                .or_else(|| nearest(missing, paths().filter(|p| p.len() > 3)))
                .filter(|p| {
                    text::edit_distance(missing, p) <= (missing.chars().count() / 4).clamp(1, 3)
                })
        }?;
        Some(text::relative_path(parent(from), found))
    }
}

enum AnchorCheck {
    Ok,
    /// (rule, message, help, replacement id if certain)
    Bad(&'static Rule, String, Option<String>, Option<String>),
}

fn check_anchor(target_path: &str, doc: &MarkdownDoc, fragment: &str) -> AnchorCheck {
    if fragment.is_empty() || fragment == "top" || doc.has_anchor(fragment) {
        return AnchorCheck::Ok;
    }
    let ids = || {
        doc.headings
            .iter()
            .map(|h| h.id.as_str())
            .chain(doc.html_ids.iter().map(String::as_str))
    };
    let lower = fragment.to_lowercase();
    let case: Vec<&str> = ids().filter(|id| id.to_lowercase() == lower).collect();
    if let [id] = case.as_slice() {
        return AnchorCheck::Bad(
            &rules::ANCHOR_CASE,
            format!("anchor `#{fragment}` differs in case from `#{id}` in {target_path}"),
            Some(format!("write `#{id}`")),
            Some(id.to_string()),
        );
    }
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let key = squash(fragment);
    let same: Vec<&str> = ids().filter(|id| squash(id) == key).collect();
    let message = format!("no heading or anchor `#{fragment}` in {target_path}");
    if let [id] = same.as_slice() {
        return AnchorCheck::Bad(
            &rules::BROKEN_ANCHOR,
            message,
            Some(format!("the heading's id is `#{id}`")),
            Some(id.to_string()),
        );
    }
    let help = nearest(fragment, ids()).map(|id| format!("did you mean `#{id}`?"));
    AnchorCheck::Bad(&rules::BROKEN_ANCHOR, message, help, None)
}

/// Outcome of following one link, shared by the link rules and checklist coverage.
struct Followed {
    /// A diagnostic to report, if the link is broken.
    problem: Option<Diagnostic>,
    /// The link leads to an existing place in the skill (and, with an anchor, to a section
    /// with content).
    covers: bool,
}

fn follow(from: &str, file: &Parsed, link: &markdown::Link, resolver: &Resolver) -> Followed {
    let none = Followed {
        problem: None,
        covers: false,
    };
    let dest = link.dest.trim();
    if dest.is_empty() || is_external(dest) {
        return none;
    }
    let (path_part, fragment_raw) = match dest.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (dest, None),
    };
    let path_part = path_part.split('?').next().unwrap_or("");
    let at = |rule: &Rule, message: String| {
        Diagnostic::new(rule, from, message)
            .at(link.line, link.col)
            .source_line(source_line(
                file.text,
                &file.index,
                link.line,
                link.col,
                file.text[link.range.clone()]
                    .lines()
                    .next()
                    .map_or(0, |l| l.chars().count()),
            ))
    };
    let target_file = if path_part.is_empty() {
        from.to_string()
    } else {
        match resolver.resolve(from, path_part) {
            Dest::File(p) => p,
            Dest::Dir(_) => {
                return Followed {
                    problem: None,
                    covers: fragment_raw.is_none(),
                };
            }
            Dest::Rejected => return none,
            Dest::Escapes(why) => {
                return Followed {
                    problem: Some(
                        at(&rules::LINK_ESCAPES, format!("link `{dest}` leaves the skill folder: {why}"))
                            .help("only the skill folder is shipped: copy the file in, or link a full https:// URL"),
                    ),
                    covers: false,
                };
            }
            Dest::CaseMismatch(actual) => {
                return Followed {
                    problem: Some(
                        at(
                            &rules::LINK_CASE,
                            format!(
                                "link `{path_part}` matches `{actual}` only when case is ignored"
                            ),
                        )
                        .help(format!(
                            "write `{}`",
                            text::relative_path(parent(from), &actual)
                        )),
                    ),
                    covers: false,
                };
            }
            Dest::Missing(p) => {
                let help = resolver
                    .did_you_mean(from, &p)
                    .map(|s| format!("did you mean `{s}`?"));
                return Followed {
                    problem: Some(
                        at(
                            &rules::BROKEN_LINK,
                            format!("link target `{path_part}` does not exist in the skill"),
                        )
                        .with_help(help),
                    ),
                    covers: false,
                };
            }
        }
    };
    let Some(fragment_raw) = fragment_raw else {
        return Followed {
            problem: None,
            covers: true,
        };
    };
    let Some(target) = resolver.parsed.get(target_file.as_str()) else {
        // Anchors into non-Markdown files (line anchors of code, say) are not checked.
        return Followed {
            problem: None,
            covers: true,
        };
    };
    let fragment = percent_decode(fragment_raw);
    match check_anchor(&target_file, &target.doc, &fragment) {
        AnchorCheck::Ok => {
            let empty_section = target
                .doc
                .headings
                .iter()
                .find(|h| h.id == fragment)
                .is_some_and(|h| !h.has_content);
            Followed {
                problem: None,
                covers: !empty_section,
            }
        }
        AnchorCheck::Bad(rule, message, help, replacement) => {
            let mut d = at(rule, message).with_help(help);
            if let Some(id) = replacement {
                let needle = format!("#{fragment_raw}");
                let src = &file.text[link.range.clone()];
                if src.matches(&needle).count() == 1
                    && let Some(i) = src.find(&needle)
                {
                    let start = link.range.start + i + 1;
                    d = d.fix(Edit {
                        range: start..start + fragment_raw.len(),
                        replacement: id,
                    });
                }
            }
            Followed {
                problem: Some(d),
                covers: false,
            }
        }
    }
}

fn check_links(path: &str, file: &Parsed, resolver: &Resolver, sink: &mut Sink) {
    for link in &file.doc.links {
        if link.kind == LinkKind::ReferenceUse {
            continue;
        }
        if let Some(d) = follow(path, file, link, resolver).problem {
            let rule = rules::find(d.code).unwrap_or(&rules::BROKEN_LINK);
            sink.emit(rule, d);
        }
    }
}

fn check_code_blocks(path: &str, file: &Parsed, sink: &mut Sink) {
    for block in &file.doc.code_blocks {
        let snippet = source_line(file.text, &file.index, block.line, block.col, 0);
        if block.lang.is_empty() {
            sink.emit(
                &rules::CODE_FENCE_NO_LANGUAGE,
                Diagnostic::new(&rules::CODE_FENCE_NO_LANGUAGE, path, "code block has no language")
                    .at(block.line, block.col)
                    .source_line(snippet.clone())
                    .help("name the language after the fence (```bash, ```python, or ```text for plain text)"),
            );
        }
        if !block.closed {
            sink.emit(
                &rules::UNCLOSED_FENCE,
                Diagnostic::new(
                    &rules::UNCLOSED_FENCE,
                    path,
                    "code block is never closed; the rest of the file is code",
                )
                .at(block.line, block.col)
                .source_line(snippet)
                .help("close it with the same fence on its own line"),
            );
        }
        if let Some((line, col, message)) =
            crate::codeblock::parse_error(&block.lang, &block.content)
        {
            let file_line = block.content_line + line - 1;
            let file_col = col + block.col - 1;
            sink.emit(
                &rules::CODE_BLOCK_INVALID,
                Diagnostic::new(
                    &rules::CODE_BLOCK_INVALID,
                    path,
                    format!("`{}` block does not parse: {message}", block.lang),
                )
                .at(file_line, file_col)
                .source_line(source_line(file.text, &file.index, file_line, file_col, 1))
                .help("fix the syntax, or mark pseudo-code as ```text"),
            );
        }
    }
}

fn has_toc(file: &Parsed) -> bool {
    let first_line = file.doc.headings.first().map_or(1, |h| h.line);
    let window = first_line + 50;
    let self_links = file
        .doc
        .links
        .iter()
        .filter(|l| l.line <= window && l.dest.starts_with('#') && l.dest.len() > 1)
        .count();
    let toc_heading = file.doc.headings.iter().any(|h| {
        let t = h.text.to_lowercase();
        h.line <= window && (t.contains("contents") || t == "toc" || t.contains("on this page"))
    });
    self_links >= 2 || toc_heading
}

fn check_toc(path: &str, file: &Parsed, config: &Config, sink: &mut Sink) {
    if path == "SKILL.md" || path.starts_with("assets/") {
        return;
    }
    let lines = file.index.line_count();
    if lines <= config.limits.toc_min_lines || has_toc(file) {
        return;
    }
    let mut d = Diagnostic::new(
        &rules::REFERENCE_NO_TOC,
        path,
        format!("{lines} lines and no table of contents near the top"),
    )
    .at(1, 1)
    .help("add a `## Contents` list of links to the `##` sections after the title");
    let sections: Vec<_> = file.doc.headings.iter().filter(|h| h.level == 2).collect();
    if sections.len() >= 2 {
        let mut toc = String::from("## Contents\n\n");
        for h in &sections {
            let label = h.text.replace(['[', ']'], "");
            toc.push_str(&format!("- [{label}](#{})\n", h.id));
        }
        toc.push('\n');
        let at = file.index.line_range(file.text, sections[0].line).start;
        d = d.fix(Edit {
            range: at..at,
            replacement: toc,
        });
    }
    sink.emit(&rules::REFERENCE_NO_TOC, d);
}

fn coverage(
    path: &str,
    file: &Parsed,
    resolver: &Resolver,
    sink: &mut Sink,
    stats: &mut SkillStats,
) {
    if file.doc.tasks.is_empty() {
        return;
    }
    let mut cov = Coverage::default();
    for task in &file.doc.tasks {
        cov.total += 1;
        let covered = task
            .links
            .iter()
            .any(|&i| follow(path, file, &file.doc.links[i], resolver).covers);
        if covered {
            cov.covered += 1;
        } else {
            let short: String = task.text.chars().take(60).collect();
            let ellipsis = if task.text.chars().count() > 60 {
                "…"
            } else {
                ""
            };
            let help = if task.links.is_empty() {
                "link the item to the reference, template or script that teaches it"
            } else {
                "its links must resolve inside the skill, and an anchor must point at a section with content"
            };
            sink.emit(
                &rules::CHECKLIST_UNCOVERED,
                Diagnostic::new(
                    &rules::CHECKLIST_UNCOVERED,
                    path,
                    format!("checklist item \"{short}{ellipsis}\" links to nothing in the skill that teaches it"),
                )
                .at(task.line, task.col)
                .source_line(source_line(file.text, &file.index, task.line, task.col, 0))
                .help(help),
            );
        }
    }
    stats.checklist_total.covered += cov.covered;
    stats.checklist_total.total += cov.total;
    stats.checklist.insert(path.to_string(), cov);
}

fn required_items(
    parsed: &HashMap<&str, Parsed>,
    config: &Config,
    sink: &mut Sink,
    stats: &mut SkillStats,
) {
    if config.checklist_require.is_empty() {
        return;
    }
    let items: Vec<String> = parsed
        .values()
        .flat_map(|p| p.doc.tasks.iter().map(|t| text::normalize_item(&t.text)))
        .collect();
    stats.checklist_required = config.checklist_require.len();
    let config_name = config.path.as_ref().map_or_else(
        || "skillcheck.toml".to_string(),
        |p| p.display().to_string(),
    );
    for entry in &config.checklist_require {
        let needle = text::normalize_item(entry);
        if items.iter().any(|i| i.contains(&needle)) {
            stats.checklist_required_found += 1;
        } else {
            sink.emit(
                &rules::CHECKLIST_REQUIRED,
                Diagnostic::new(
                    &rules::CHECKLIST_REQUIRED,
                    "SKILL.md",
                    format!("required checklist item \"{entry}\" (from {config_name}) matches no `- [ ]` item"),
                )
                .help("add the item to a checklist, or change `[checklist] require`"),
            );
        }
    }
}

const REACHABLE_DIRS: [&str; 3] = ["references/", "assets/", "scripts/"];

fn reachability(resolver: &Resolver, sink: &mut Sink) {
    let source = resolver.source;
    let mut reached: HashSet<String> = HashSet::new();
    let mut reached_dirs: Vec<String> = Vec::new();
    // (markdown file, depth, parent and line it was first linked from)
    let mut queue: VecDeque<(String, usize)> = VecDeque::new();
    let mut depth_of: HashMap<String, (usize, Option<(String, usize)>)> = HashMap::new();
    queue.push_back(("SKILL.md".to_string(), 0));
    depth_of.insert("SKILL.md".to_string(), (0, None));
    reached.insert("SKILL.md".to_string());

    let mut visit = |path: String,
                     depth: usize,
                     from: &str,
                     line: usize,
                     via_folder: bool,
                     queue: &mut VecDeque<(String, usize)>,
                     reached: &mut HashSet<String>| {
        if let Some(f) = source.file(&path) {
            reached.insert(f.path.clone());
            if resolver.parsed.contains_key(path.as_str()) && !depth_of.contains_key(&path) {
                let parent = (!via_folder).then(|| (from.to_string(), line));
                depth_of.insert(path.clone(), (depth, parent));
                queue.push_back((path, depth));
            }
        }
    };

    while let Some((path, depth)) = queue.pop_front() {
        let Some(file) = resolver.parsed.get(path.as_str()) else {
            continue;
        };
        let mut targets: Vec<(Dest, usize)> = Vec::new();
        for link in &file.doc.links {
            let dest = link.dest.trim();
            if dest.is_empty() || is_external(dest) || link.kind == LinkKind::ReferenceUse {
                continue;
            }
            let p = dest
                .split('#')
                .next()
                .unwrap_or("")
                .split('?')
                .next()
                .unwrap_or("");
            if !p.is_empty() {
                targets.push((resolver.resolve(&path, p), link.line));
            }
        }
        for cp in &file.doc.code_paths {
            let token = cp.token.trim_start_matches("./");
            for base in [parent(&path), ""] {
                if let Some(joined) = join_normalized(base, token)
                    && !joined.is_empty()
                    && (source.file(&joined).is_some() || source.is_dir(&joined))
                {
                    targets.push((resolver.resolve("", &joined), cp.line));
                    break;
                }
            }
        }
        for (target, line) in targets {
            match target {
                Dest::File(p) => visit(p, depth + 1, &path, line, false, &mut queue, &mut reached),
                Dest::Dir(d) if !d.is_empty() => {
                    let prefix = format!("{d}/");
                    let under: Vec<String> = source
                        .files
                        .iter()
                        .filter(|f| f.path.starts_with(&prefix))
                        .map(|f| f.path.clone())
                        .collect();
                    for p in under {
                        visit(p, depth + 1, &path, line, true, &mut queue, &mut reached);
                    }
                    reached_dirs.push(prefix);
                }
                _ => {}
            }
        }
    }

    for f in &source.files {
        if REACHABLE_DIRS.iter().any(|d| f.path.starts_with(d))
            && !reached.contains(f.path.as_str())
            && !hygiene::is_unwanted(&f.path)
        {
            sink.emit(
                &rules::ORPHAN_FILE,
                Diagnostic::new(
                    &rules::ORPHAN_FILE,
                    &f.path,
                    "not reachable from SKILL.md: no link or backticked path leads to it or to a folder that holds it",
                )
                .help("link it from SKILL.md (or from a file SKILL.md links), name its folder, or delete it"),
            );
        }
    }
    let mut deep: Vec<_> = depth_of
        .iter()
        .filter(|(p, (d, parent))| *d >= 2 && parent.is_some() && !p.starts_with("assets/"))
        .collect();
    deep.sort_by(|a, b| a.0.cmp(b.0));
    for (path, (depth, parent)) in deep {
        if let Some((from, line)) = parent {
            let (line_text, col) = resolver
                .parsed
                .get(from.as_str())
                .map(|p| {
                    let r = p.index.line_range(p.text, *line);
                    let col = p.text[r.clone()]
                        .chars()
                        .take_while(|c| c.is_whitespace())
                        .count()
                        + 1;
                    (source_line(p.text, &p.index, *line, col, 0), col)
                })
                .unwrap_or((None, 1));
            sink.emit(
                &rules::DEEP_REFERENCE,
                Diagnostic::new(
                    &rules::DEEP_REFERENCE,
                    from.as_str(),
                    format!("`{path}` is {depth} links away from SKILL.md (reached only through `{from}`)"),
                )
                .at(*line, col)
                .source_line(line_text)
                .help(format!("link `{path}` directly from SKILL.md")),
            );
        }
    }
}

/// Errors and warnings of a set of reports.
pub fn totals(reports: &[Report]) -> (usize, usize) {
    reports.iter().fold((0, 0), |(e, w), r| {
        (
            e + r
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count(),
            w + r
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Warning)
                .count(),
        )
    })
}

/// Per-file checklist coverage in path order, for renderers.
pub fn coverage_rows(report: &Report) -> &BTreeMap<String, Coverage> {
    &report.stats.checklist
}
