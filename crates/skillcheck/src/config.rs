//! `skillcheck.toml`: rule severities, limits, checklist requirements and pack settings.
//!
//! Found in the skill folder or any parent. Unknown keys are errors that name file:line.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use crate::diag::Severity;
use crate::rules;
use crate::source::ReadLimits;

pub const FILE_NAME: &str = "skillcheck.toml";

/// Which client's rules apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The Agent Skills specification.
    #[default]
    Spec,
    /// Claude Code: also its documented extra frontmatter keys.
    ClaudeCode,
    /// claude.ai uploads: the spec plus the upload limits.
    ClaudeAi,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Spec => "spec",
            Target::ClaudeCode => "claude-code",
            Target::ClaudeAi => "claude-ai",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintLimits {
    pub max_body_lines: usize,
    pub max_body_tokens: usize,
    /// Markdown files longer than this need a table of contents.
    pub toc_min_lines: usize,
}

impl Default for LintLimits {
    fn default() -> Self {
        LintLimits {
            max_body_lines: 500,
            max_body_tokens: 5000,
            toc_min_lines: 100,
        }
    }
}

/// The `[pack]` table, used by `skillcheck pack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackConfig {
    /// Extra exclusion globs (see [`glob_match`]), on top of the built-in ones.
    pub exclude: Vec<String>,
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
}

impl Default for PackConfig {
    fn default() -> Self {
        let limits = ReadLimits::default();
        PackConfig {
            exclude: Vec::new(),
            max_file_bytes: limits.max_file_bytes,
            max_total_bytes: limits.max_total_bytes,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The file this came from; `None` for the defaults.
    pub path: Option<PathBuf>,
    pub target: Target,
    /// Per-rule override by code: `None` turns the rule off.
    pub severities: BTreeMap<&'static str, Option<Severity>>,
    pub limits: LintLimits,
    /// `[checklist] require`: entries that must match a checklist item.
    pub checklist_require: Vec<String>,
    pub pack: PackConfig,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    target: Option<Spanned<Target>>,
    #[serde(default)]
    lint: RawLint,
    #[serde(default)]
    rules: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    checklist: RawChecklist,
    #[serde(default)]
    pack: RawPack,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLint {
    target: Option<Spanned<Target>>,
    max_body_lines: Option<usize>,
    max_body_tokens: Option<usize>,
    toc_min_lines: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawChecklist {
    #[serde(default)]
    require: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPack {
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    max_file_bytes: Option<Spanned<u64>>,
    max_total_bytes: Option<Spanned<u64>>,
}

impl Config {
    /// The limits for reading a skill (from `[pack]`).
    pub fn read_limits(&self) -> ReadLimits {
        ReadLimits {
            max_file_bytes: self.pack.max_file_bytes,
            max_total_bytes: self.pack.max_total_bytes,
        }
    }

    /// The severity of `rule` under this config; `None` when it is off.
    pub fn severity(&self, rule: &rules::Rule) -> Option<Severity> {
        match self.severities.get(rule.code) {
            Some(s) => *s,
            None => Some(rule.severity),
        }
    }

    /// Finds `skillcheck.toml` in `start` (a skill folder, or a package file's folder) or any
    /// parent, and loads it; the defaults when there is none.
    pub fn discover(start: &Path) -> Result<Config, ConfigError> {
        match find_config(start) {
            Some(path) => Config::load(&path),
            None => Ok(Config::default()),
        }
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |span: Option<Range<usize>>, message: String| {
            let (line, col) = span.map_or((1, 1), |s| line_col(text, s.start));
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                col,
                message,
            }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            invalid(e.span(), message)
        })?;
        let mut config = Config {
            path: Some(path.to_path_buf()),
            ..Config::default()
        };
        config.target = match (raw.target, raw.lint.target) {
            (Some(a), Some(b)) if a.get_ref() != b.get_ref() => {
                return Err(invalid(
                    Some(b.span()),
                    format!(
                        "`[lint] target = \"{}\"` contradicts the top-level `target = \"{}\"`; keep one",
                        b.get_ref(),
                        a.get_ref()
                    ),
                ));
            }
            (Some(t), _) | (None, Some(t)) => *t.get_ref(),
            (None, None) => Target::Spec,
        };
        let defaults = LintLimits::default();
        config.limits = LintLimits {
            max_body_lines: raw.lint.max_body_lines.unwrap_or(defaults.max_body_lines),
            max_body_tokens: raw.lint.max_body_tokens.unwrap_or(defaults.max_body_tokens),
            toc_min_lines: raw.lint.toc_min_lines.unwrap_or(defaults.toc_min_lines),
        };
        for (key, value) in raw.rules {
            let Some(rule) = rules::find(key.get_ref()) else {
                return Err(invalid(
                    Some(key.span()),
                    format!("unknown rule `{}` (see `skillcheck rules`)", key.get_ref()),
                ));
            };
            let severity = match value.get_ref().as_str() {
                "off" => None,
                "warning" | "warn" => Some(Severity::Warning),
                "error" => Some(Severity::Error),
                other => {
                    return Err(invalid(
                        Some(value.span()),
                        format!(
                            "severity `{other}` for `{}`: use \"off\", \"warning\" or \"error\"",
                            key.get_ref()
                        ),
                    ));
                }
            };
            config.severities.insert(rule.code, severity);
        }
        for entry in raw.checklist.require {
            if entry.get_ref().trim().is_empty() {
                return Err(invalid(
                    Some(entry.span()),
                    "an empty `[checklist] require` entry matches everything; remove it".into(),
                ));
            }
            config.checklist_require.push(entry.into_inner());
        }
        for glob in raw.pack.exclude {
            let g = glob.get_ref();
            if g.is_empty() || g.starts_with('/') && g.len() == 1 || g.contains('\\') {
                return Err(invalid(
                    Some(glob.span()),
                    format!("`[pack] exclude` glob `{g}` is empty, `/` or has a backslash"),
                ));
            }
            config.pack.exclude.push(glob.into_inner());
        }
        for (value, slot) in [
            (raw.pack.max_file_bytes, &mut config.pack.max_file_bytes),
            (raw.pack.max_total_bytes, &mut config.pack.max_total_bytes),
        ] {
            if let Some(v) = value {
                if *v.get_ref() == 0 {
                    return Err(invalid(
                        Some(v.span()),
                        "a size limit of 0 bytes admits nothing".into(),
                    ));
                }
                *slot = *v.get_ref();
            }
        }
        if config.pack.max_file_bytes > config.pack.max_total_bytes {
            config.pack.max_file_bytes = config.pack.max_total_bytes;
        }
        Ok(config)
    }
}

/// The nearest `skillcheck.toml` at or above `start`, shown relative to the current folder
/// when it lies under it.
pub fn find_config(start: &Path) -> Option<PathBuf> {
    let absolute = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
    let found = absolute
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|p| p.is_file())?;
    let cwd = std::env::current_dir().and_then(std::fs::canonicalize).ok();
    match cwd.as_deref().and_then(|cwd| found.strip_prefix(cwd).ok()) {
        Some(rel) => Some(rel.to_path_buf()),
        None => Some(found),
    }
}

/// 1-based line and character column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Gitignore-style matching of a `/`-separated path relative to the skill root.
///
/// `*` and `?` stay within one path component, `**` crosses folders. A pattern without `/`
/// (other than a trailing one) matches a name at any depth; a trailing `/` matches only
/// folders (and so everything under them); a leading `/` anchors at the root.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let dir_only = pattern.ends_with('/');
    let pattern = pattern.trim_end_matches('/');
    let anchored = pattern.starts_with('/') || pattern.contains('/');
    let pattern = pattern.trim_start_matches('/');
    let components: Vec<&str> = path.split('/').collect();
    for end in 1..=components.len() {
        // A folder pattern matches only a proper prefix (a folder), never the file itself.
        if dir_only && end == components.len() {
            break;
        }
        let matched = if anchored {
            match_segments(pattern, &components[..end].join("/"))
        } else {
            match_segments(pattern, components[end - 1])
        };
        if matched {
            return true;
        }
    }
    false
}

/// Whether `text` matches `pattern` as a whole. A table over (pattern position, text
/// position), filled from the end, so the cost is `O(pattern × text)` whatever the pattern:
/// a `.skillignore` ships inside the skill being packed and must not be able to stall pack
/// with a backtracking blow-up such as `*a*a*a*a*a*a*ab`.
fn match_segments(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let width = t.len() + 1;
    // matches[pi * width + ti]: does p[pi..] match t[ti..]?
    let mut matches = vec![false; (p.len() + 1) * width];
    matches[p.len() * width + t.len()] = true;
    for pi in (0..p.len()).rev() {
        let row = pi * width;
        if p[pi] == '*' && p.get(pi + 1) == Some(&'*') {
            // `**` (and a `/` right after it) spans folders; what follows starts at the
            // text's start, after a `/`, or anywhere when nothing follows.
            let rest = if p.get(pi + 2) == Some(&'/') {
                pi + 3
            } else {
                pi + 2
            };
            let rest_row = rest * width;
            let mut later_start = false;
            for ti in (0..=t.len()).rev() {
                matches[row + ti] = matches[rest_row + ti] || later_start;
                if ti > 0 && (t[ti - 1] == '/' || rest == p.len()) && matches[rest_row + ti] {
                    later_start = true;
                }
            }
            continue;
        }
        let next_row = (pi + 1) * width;
        for ti in (0..=t.len()).rev() {
            let here = t.get(ti).copied();
            matches[row + ti] = match p[pi] {
                '*' => {
                    matches[next_row + ti]
                        || (here.is_some_and(|c| c != '/') && matches[row + ti + 1])
                }
                '?' => here.is_some_and(|c| c != '/') && matches[next_row + ti + 1],
                c => here == Some(c) && matches[next_row + ti + 1],
            };
        }
    }
    matches[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The straightforward backtracking matcher: the specification the table must equal.
    fn reference_match(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') if p.get(1) == Some(&'*') => {
                let rest = &p[2..];
                let rest = rest.strip_prefix(&['/']).unwrap_or(rest);
                (0..=t.len()).any(|i| {
                    (i == 0 || t[i - 1] == '/' || rest.is_empty()) && reference_match(rest, &t[i..])
                })
            }
            Some('*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| reference_match(&p[1..], &t[i..])),
            Some('?') => t.first().is_some_and(|&c| c != '/') && reference_match(&p[1..], &t[1..]),
            Some(&c) => t.first() == Some(&c) && reference_match(&p[1..], &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn table_matcher_equals_the_backtracking_one(
            pattern in "[ab*?/]{0,8}",
            text in "[ab/]{0,10}",
        ) {
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            prop_assert_eq!(match_segments(&pattern, &text), reference_match(&p, &t));
        }
    }

    #[test]
    fn hostile_patterns_do_not_backtrack() {
        // Exponential for a backtracking matcher (hours at this size); a table scan here.
        let name = "a".repeat(200);
        let pattern = "*a".repeat(30) + "b";
        assert!(!glob_match(&pattern, &name));
        assert!(glob_match(&("*a".repeat(30) + "*"), &name));
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("skillcheck.toml"))
    }

    #[test]
    fn defaults_and_full_config() {
        let c = parse("").unwrap();
        assert_eq!(c.target, Target::Spec);
        assert_eq!(c.pack.max_file_bytes, 10 * 1024 * 1024);
        let c = parse(
            "target = \"claude-code\"\n[lint]\nmax_body_lines = 300\n[rules]\nSTR002 = \"error\"\nsecret = \"off\"\n[checklist]\nrequire = [\"POST /agents/run\"]\n[pack]\nexclude = [\"*.log\"]\nmax_total_bytes = 1000\n",
        )
        .unwrap();
        assert_eq!(c.target, Target::ClaudeCode);
        assert_eq!(c.limits.max_body_lines, 300);
        assert_eq!(c.severity(&rules::ORPHAN_FILE), Some(Severity::Error));
        assert_eq!(c.severity(&rules::SECRET), None);
        assert_eq!(c.checklist_require, ["POST /agents/run"]);
        assert_eq!(c.pack.max_total_bytes, 1000);
        assert_eq!(c.pack.max_file_bytes, 1000);
    }

    #[test]
    fn unknown_keys_name_the_line() {
        let err = parse("[lint]\nmax_body_lines = 3\nmax_lines = 4\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("skillcheck.toml:3:1: unknown field `max_lines`"),
            "{err}"
        );
        let err = parse("\n[rules]\nNOPE9 = \"off\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("skillcheck.toml:3:1: unknown rule `NOPE9`"),
            "{err}"
        );
        let err = parse("[rules]\nLNK001 = \"loud\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("skillcheck.toml:2:10:"), "{err}");
        let err = parse("target = \"claude-web\"\n").unwrap_err().to_string();
        assert!(err.starts_with("skillcheck.toml:1:10:"), "{err}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.log", "a/b/x.log"));
        assert!(!glob_match("*.log", "a/b/x.logs"));
        assert!(glob_match("build/", "build/x/y"));
        assert!(!glob_match("build/", "build"));
        assert!(glob_match("/notes.md", "notes.md"));
        assert!(!glob_match("/notes.md", "a/notes.md"));
        assert!(glob_match("assets/**/*.tmp", "assets/a/b/c.tmp"));
        assert!(glob_match("assets/**/*.tmp", "assets/c.tmp"));
        assert!(glob_match("**/cache/", "x/cache/y"));
        assert!(glob_match("node_modules/", "a/node_modules/b.js"));
    }
}
