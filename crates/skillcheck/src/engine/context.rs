//! The lint context: every Markdown file parsed once, the SKILL.md frontmatter split and
//! parsed once, and every link and backticked path resolved once. The rule families only
//! read it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::diag::SourceLine;
use crate::parse::markdown::{self, LineIndex, MarkdownDoc};
use crate::parse::yaml::{self, Node, YamlError};
use crate::settings::{LintLimits, Target};
use crate::source::{Origin, SkillSource};
use crate::text::{self, join_normalized, nearest, parent, percent_decode};

/// What the lint run was asked for, besides the rule selection.
#[derive(Debug, Clone, Copy)]
pub struct LintSettings<'a> {
    pub target: Target,
    pub limits: &'a LintLimits,
    pub checklist_require: &'a [String],
    /// The config file the settings came from, for messages.
    pub config_path: Option<&'a Path>,
    /// Folders that ship as one bundle file each: what the upload limits count.
    pub bundles: &'a [String],
}

/// A Markdown file of the skill, parsed once, with its links resolved.
pub struct MdFile<'a> {
    pub path: &'a str,
    pub text: &'a str,
    pub index: LineIndex,
    pub doc: MarkdownDoc,
    /// One per `doc.links` entry, same order.
    pub links: Vec<LinkOutcome>,
    /// One per `doc.code_paths` entry, same order.
    pub code_paths: Vec<Dest>,
}

impl MdFile<'_> {
    /// The line at `line`, highlighted from character column `col` for `len` characters (to
    /// the end of the line when `len` is 0).
    pub fn source_line(&self, line: usize, col: usize, len: usize) -> Option<SourceLine> {
        source_line(self.text, &self.index, line, col, len)
    }
}

/// Where a link destination or a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// Not a path of the skill: a URL, a mail address, an empty destination.
    External,
    File(String),
    Dir(String),
    /// An absolute path.
    Absolute,
    /// `..` climbs out of the skill. `shown` is the path from the skill's parent folder;
    /// `exists` tells whether something is there on disk (`None` for packages), and
    /// `sibling_skill` whether that is inside another skill next to this one.
    Outside {
        shown: String,
        exists: Option<bool>,
        sibling_skill: bool,
    },
    /// Matches an existing file only when case is ignored.
    CaseMismatch(String),
    /// Missing from the file's folder, but the same path exists from the skill root.
    RootRelative(String),
    Missing(String),
    /// A path that was rejected while reading (already reported).
    Rejected,
}

/// How a `#fragment` fares in the file it points into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// No fragment, or a file whose anchors are not checked (not Markdown).
    Unchecked,
    Found {
        /// The section has content (not only a heading).
        has_content: bool,
    },
    /// Matches a heading id only when case is ignored.
    CaseMismatch { id: String },
    /// No such id. `certain`: the one id equal once punctuation and case are ignored.
    Missing {
        certain: Option<String>,
        nearest: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOutcome {
    pub dest: Dest,
    /// The path part as written (without fragment and query).
    pub path: String,
    /// The fragment as written, without `#`.
    pub fragment: Option<String>,
    pub anchor: Anchor,
}

impl LinkOutcome {
    /// The link leads to an existing place in the skill, and an anchor to a section with
    /// content.
    pub fn covers(&self) -> bool {
        match (&self.dest, &self.anchor) {
            (Dest::Dir(_), Anchor::Unchecked) => self.fragment.is_none(),
            (Dest::File(_), Anchor::Unchecked) => true,
            (Dest::File(_), Anchor::Found { has_content }) => *has_content,
            _ => false,
        }
    }
}

/// SKILL.md's frontmatter, split off and parsed once.
#[derive(Debug)]
pub enum Frontmatter {
    /// The file does not start with `---`.
    Missing,
    /// No closing `---`; `glued_line` is a 1-based line that holds `---` with other text.
    Unclosed { glued_line: Option<usize> },
    /// `lines` is the number of lines from the opening to the closing `---`, both included.
    Parsed {
        nodes: Result<Vec<Node>, YamlError>,
        lines: usize,
    },
}

impl Frontmatter {
    /// The top-level mapping, when the frontmatter is one.
    pub fn entries(&self) -> Option<&[(Node, Node)]> {
        match self {
            Frontmatter::Parsed {
                nodes: Ok(nodes), ..
            } => match nodes.first() {
                Some(Node::Map { entries, .. }) => Some(entries),
                _ => None,
            },
            _ => None,
        }
    }

    /// The value of a top-level key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
}

fn split_frontmatter(text: &str) -> Frontmatter {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    if lines.next().map(str::trim_end) != Some("---") {
        return Frontmatter::Missing;
    }
    let mut yaml_lines = Vec::new();
    for line in lines {
        if line.trim_end() == "---" {
            return Frontmatter::Parsed {
                nodes: yaml::parse(&yaml_lines.join("\n")),
                lines: yaml_lines.len() + 2,
            };
        }
        yaml_lines.push(line);
    }
    let glued_line = yaml_lines
        .iter()
        .position(|l| {
            let t = l.trim_end();
            t.starts_with("---") || t.ends_with("---")
        })
        .map(|i| i + 2);
    Frontmatter::Unclosed { glued_line }
}

/// What a path of the skill is, borrowed from the tree.
enum Found<'a> {
    Dir,
    File,
    Rejected,
    /// Exists only in another case: the actual path.
    CaseOf(&'a str),
    Missing,
}

pub struct Context<'a> {
    pub source: &'a SkillSource,
    pub settings: LintSettings<'a>,
    /// Markdown files that are UTF-8, by path.
    pub files: BTreeMap<&'a str, MdFile<'a>>,
    /// Markdown files that are not UTF-8, with the offset of the first bad byte.
    pub not_utf8: Vec<(&'a str, usize)>,
    /// `None` when there is no readable SKILL.md.
    pub frontmatter: Option<Frontmatter>,
    rejected: foldhash::HashSet<&'a str>,
    /// Lowercased path → the first file with it, for case-mismatch lookups.
    lowercase: foldhash::HashMap<String, &'a str>,
    /// Lowercased folders and rejected paths: with `lowercase`, every name a path of the
    /// skill can match in any case, so most missing paths are known missing after one probe.
    lowercase_others: foldhash::HashSet<String>,
    /// The skill folder on disk, canonical (`None` for packages).
    /// Found on the first link that climbs out of the skill: most skills have none, and
    /// canonicalizing costs a system call per path component.
    skill_dir: OnceLock<Option<PathBuf>>,
}

impl<'a> Context<'a> {
    pub fn new(source: &'a SkillSource, settings: LintSettings<'a>) -> Self {
        let mut files = BTreeMap::new();
        let mut not_utf8 = Vec::new();
        for file in source.files.iter().filter(|f| f.is_markdown()) {
            match std::str::from_utf8(&file.bytes) {
                Ok(text) => {
                    let index = LineIndex::new(text);
                    let doc = markdown::parse(text, &index);
                    files.insert(
                        file.path.as_str(),
                        MdFile {
                            path: &file.path,
                            text,
                            index,
                            doc,
                            links: Vec::new(),
                            code_paths: Vec::new(),
                        },
                    );
                }
                Err(e) => not_utf8.push((file.path.as_str(), e.valid_up_to())),
            }
        }
        let frontmatter = files.get("SKILL.md").map(|f| split_frontmatter(f.text));
        let mut ctx = Context {
            source,
            settings,
            files,
            not_utf8,
            frontmatter,
            rejected: source.rejected.iter().map(|r| r.path.as_str()).collect(),
            lowercase: foldhash::HashMap::default(),
            lowercase_others: source
                .rejected
                .iter()
                .map(|r| r.path.to_lowercase())
                .collect(),
            skill_dir: OnceLock::new(),
        };
        for f in &source.files {
            ctx.lowercase
                .entry(f.path.to_lowercase())
                .or_insert(&f.path);
            for (slash, _) in f.path.match_indices('/') {
                let dir = &f.path[..slash];
                if !ctx.lowercase_others.contains(dir) {
                    ctx.lowercase_others.insert(dir.to_lowercase());
                }
            }
        }
        // Resolve every link against the parsed files, then store the outcomes.
        let resolved: Vec<(&str, Vec<LinkOutcome>, Vec<Dest>)> = ctx
            .files
            .values()
            .map(|f| {
                let links = f.doc.links.iter().map(|l| ctx.follow(f.path, l)).collect();
                let paths = f
                    .doc
                    .code_paths
                    .iter()
                    .map(|cp| ctx.resolve_mention(f.path, &cp.token))
                    .collect();
                (f.path, links, paths)
            })
            .collect();
        for (path, links, paths) in resolved {
            if let Some(f) = ctx.files.get_mut(path) {
                f.links = links;
                f.code_paths = paths;
            }
        }
        ctx
    }

    pub fn skill_md(&self) -> Option<&MdFile<'a>> {
        self.files.get("SKILL.md")
    }

    /// Resolves the path part of a link written in `from`.
    pub fn resolve(&self, from: &str, path_part: &str) -> Dest {
        if path_part.starts_with('/') || path_part.starts_with('\\') {
            return Dest::Absolute;
        }
        let decoded = percent_decode(path_part);
        let Some(path) = join_normalized(parent(from), &decoded) else {
            return self.outside(from, &decoded);
        };
        match self.lookup(&path) {
            Dest::Missing(_) if !parent(from).is_empty() => {
                match self.lookup(&join_normalized("", &decoded).unwrap_or_default()) {
                    Dest::File(p) | Dest::Dir(p) if !p.is_empty() => Dest::RootRelative(p),
                    _ => Dest::Missing(path),
                }
            }
            found => found,
        }
    }

    /// A path mentioned in code (`scripts/x.py`): relative to the file's folder or to the
    /// skill root, whichever exists; a path written from further up that goes through the
    /// skill's own folder (`skills/<name>/scripts/x.py`) counts from the skill root.
    pub fn resolve_mention(&self, from: &str, token: &str) -> Dest {
        let token = token.trim_start_matches("./");
        let mut fallback = None;
        let name = self.source.name.as_str();
        // After `<name>/` at the start, or after the first `/<name>/`.
        let after_name = |at: usize| {
            token[at..]
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('/'))
        };
        let through_skill = after_name(0)
            .or_else(|| {
                token
                    .match_indices('/')
                    .find_map(|(slash, _)| after_name(slash + 1))
            })
            .filter(|rest| !rest.is_empty());
        // From a file at the root both bases are the root: one lookup is enough.
        let from_dir = parent(from);
        let bases: &[&str] = if from_dir.is_empty() {
            &[""]
        } else {
            &[from_dir, ""]
        };
        for &base in bases {
            if let Some(joined) = join_normalized(base, token)
                && !joined.is_empty()
            {
                match self.find(&joined) {
                    Found::File => return Dest::File(joined),
                    Found::Dir => return Dest::Dir(joined),
                    Found::Rejected => return Dest::Rejected,
                    Found::CaseOf(actual) => fallback = Some(actual),
                    Found::Missing => {}
                }
            }
        }
        match through_skill.map(|rest| (rest, self.find(rest))) {
            Some((rest, Found::File)) => Dest::File(rest.to_string()),
            Some((rest, Found::Dir)) => Dest::Dir(rest.to_string()),
            _ => fallback.map_or_else(
                || Dest::Missing(token.to_string()),
                |actual| Dest::CaseMismatch(actual.to_string()),
            ),
        }
    }

    /// A normalised path relative to the skill root.
    fn lookup(&self, path: &str) -> Dest {
        match self.find(path) {
            Found::Dir => Dest::Dir(path.to_string()),
            Found::File => Dest::File(path.to_string()),
            Found::Rejected => Dest::Rejected,
            Found::CaseOf(actual) => Dest::CaseMismatch(actual.to_string()),
            Found::Missing => Dest::Missing(path.to_string()),
        }
    }

    /// What [`Self::lookup`] finds, without allocating: most mentions in code name nothing.
    fn find(&self, path: &str) -> Found<'a> {
        if path.is_empty() {
            return Found::Dir;
        }
        // An ASCII path (nearly all) is lowercased on the stack.
        let mut buf = [0u8; 256];
        let owned;
        let lower = match buf.get_mut(..path.len()) {
            Some(bytes) if path.is_ascii() => {
                bytes.copy_from_slice(path.as_bytes());
                bytes.make_ascii_lowercase();
                std::str::from_utf8(bytes).expect("lowercased ASCII is UTF-8")
            }
            _ => {
                owned = path.to_lowercase();
                owned.as_str()
            }
        };
        let case = self.lowercase.get(lower).copied();
        // A folder, file or rejected path of that name, in any case, would be in one of the two
        // tables (`is_dir` also takes a trailing `/`, which the tables do not hold).
        if case.is_none() && !path.ends_with('/') && !self.lowercase_others.contains(lower) {
            return Found::Missing;
        }
        if self.source.is_dir(path) {
            return Found::Dir;
        }
        if self.source.file(path).is_some() {
            return Found::File;
        }
        if !self.rejected.is_empty() && self.rejected.contains(path) {
            return Found::Rejected;
        }
        match case {
            Some(actual) => Found::CaseOf(actual),
            None => Found::Missing,
        }
    }

    fn outside(&self, from: &str, decoded: &str) -> Dest {
        let name = &self.source.name;
        let shown = join_normalized(&format!("{name}/{}", parent(from)), decoded)
            .unwrap_or_else(|| decoded.to_string());
        let skill_dir = self.skill_dir.get_or_init(|| match &self.source.origin {
            Origin::Dir(p) => std::fs::canonicalize(p).ok(),
            Origin::Package(_) => None,
        });
        let Some(root) = skill_dir else {
            return Dest::Outside {
                shown,
                exists: None,
                sibling_skill: false,
            };
        };
        let parent_dir = root.parent().unwrap_or(root);
        let exists = parent_dir.join(&shown).exists();
        let sibling_skill = exists
            && shown
                .split_once('/')
                .is_some_and(|(first, _)| parent_dir.join(first).join("SKILL.md").is_file());
        Dest::Outside {
            shown,
            exists: Some(exists),
            sibling_skill,
        }
    }

    fn follow(&self, from: &str, link: &markdown::Link) -> LinkOutcome {
        let dest = link.dest.trim();
        let (path_part, fragment) = match dest.split_once('#') {
            Some((p, f)) => (p, Some(f.to_string())),
            None => (dest, None),
        };
        let path_part = path_part.split('?').next().unwrap_or("").to_string();
        let mut outcome = LinkOutcome {
            dest: Dest::External,
            path: path_part,
            fragment,
            anchor: Anchor::Unchecked,
        };
        // A reference use (`[text][label]`) resolves like its definition: checklist
        // coverage follows it; the link rules report the definition only.
        if dest.is_empty() || is_external(dest) {
            return outcome;
        }
        outcome.dest = if outcome.path.is_empty() {
            Dest::File(from.to_string())
        } else {
            self.resolve(from, &outcome.path)
        };
        if let (Dest::File(target), Some(fragment)) = (&outcome.dest, &outcome.fragment)
            && let Some(target) = self.files.get(target.as_str())
        {
            outcome.anchor = check_anchor(&target.doc, &percent_decode(fragment));
        }
        outcome
    }

    /// Suggests an existing path close to `missing`, written relative to `from`'s folder:
    /// the same file name elsewhere, or a near spelling in the same folder.
    pub fn did_you_mean(&self, from: &str, missing: &str) -> Option<String> {
        let (dir, name) = missing.rsplit_once('/').unwrap_or(("", missing));
        let paths = || self.source.files.iter().map(|f| f.path.as_str());
        let same_name: Vec<&str> = paths()
            .filter(|p| p.rsplit('/').next() == Some(name))
            .collect();
        let found = if same_name.len() == 1 {
            Some(same_name[0])
        } else {
            let limit = (name.chars().count() / 4).clamp(1, 3);
            paths()
                .filter(|p| parent(p) == dir)
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

    /// The config file's name, for messages.
    pub fn config_name(&self) -> String {
        self.settings.config_path.map_or_else(
            || crate::settings::CONFIG_FILE.to_string(),
            |p| p.display().to_string(),
        )
    }
}

pub fn is_external(dest: &str) -> bool {
    if dest.starts_with("//") {
        return true;
    }
    dest.find(':').is_some_and(|i| {
        i > 0
            && dest[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && dest.as_bytes()[0].is_ascii_alphabetic()
    })
}

fn check_anchor(doc: &MarkdownDoc, fragment: &str) -> Anchor {
    if fragment.is_empty() || fragment == "top" || doc.has_anchor(fragment) {
        let has_content = doc
            .headings
            .iter()
            .find(|h| h.id == fragment)
            .is_none_or(|h| h.has_content);
        return Anchor::Found { has_content };
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
        return Anchor::CaseMismatch { id: id.to_string() };
    }
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let key = squash(fragment);
    let same: Vec<&str> = ids().filter(|id| squash(id) == key).collect();
    Anchor::Missing {
        certain: match same.as_slice() {
            [id] => Some(id.to_string()),
            _ => None,
        },
        nearest: nearest(fragment, ids()).map(str::to_string),
    }
}

/// The line of `text` at `line`, highlighted from character column `col` for `len` chars
/// (to the end of the line when `len` is 0).
pub fn source_line(
    text: &str,
    index: &LineIndex,
    line: usize,
    col: usize,
    len: usize,
) -> Option<SourceLine> {
    if line == 0 || line > index.line_count() {
        return None;
    }
    let line_text = &text[index.line_range(text, line)];
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
