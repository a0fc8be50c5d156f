//! `skillcheck.toml`: rule severities, limits, checklist requirements and pack settings.
//!
//! Found in the skill folder or any parent. Unknown keys are errors that name file:line.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use crate::registry::{Rule, Severity};
use crate::rules;
use crate::settings::{CONFIG_FILE, LintLimits, Selection, Target, spec_is_known};
use crate::source::ReadLimits;
use crate::text::line_col;

/// The `[pack]` table, used by `skillcheck pack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackConfig {
    /// Extra exclusion globs (see [`crate::source::glob_match`]), on top of the built-in ones.
    pub exclude: Vec<String>,
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
    /// `[pack.targets.<target>] bundle`: folders that ship as one bundle file each
    /// (see [`crate::source::bundle`]) in packages for that target.
    pub bundles: BTreeMap<Target, Vec<String>>,
}

impl PackConfig {
    /// The folders bundled for `target`, in config order.
    pub fn bundles_for(&self, target: Target) -> &[String] {
        self.bundles.get(&target).map_or(&[], Vec::as_slice)
    }
}

impl Default for PackConfig {
    fn default() -> Self {
        let limits = ReadLimits::default();
        PackConfig {
            exclude: Vec::new(),
            max_file_bytes: limits.max_file_bytes,
            max_total_bytes: limits.max_total_bytes,
            bundles: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The file this came from; `None` for the defaults.
    pub path: Option<PathBuf>,
    pub target: Target,
    /// Which rules run (`[lint] select`, `extend-select`, `ignore`, and `[rules]`).
    pub selection: Selection,
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
    select: Option<Vec<Spanned<String>>>,
    #[serde(rename = "extend-select", alias = "extend_select", default)]
    extend_select: Vec<Spanned<String>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
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
    #[serde(default)]
    targets: RawPackTargets,
}

/// One table per target, so a misspelt target is an unknown key with its line.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPackTargets {
    spec: Option<RawPackTarget>,
    #[serde(rename = "claude-code")]
    claude_code: Option<RawPackTarget>,
    #[serde(rename = "claude-ai")]
    claude_ai: Option<RawPackTarget>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPackTarget {
    #[serde(default)]
    bundle: Vec<Spanned<String>>,
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
    pub fn severity(&self, rule: &Rule) -> Option<Severity> {
        self.selection.severity(rule)
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
        let specs = |list: Vec<Spanned<String>>, key: &str| {
            list.into_iter()
                .map(|spec| {
                    if spec_is_known(spec.get_ref(), rules::all()) {
                        Ok(spec.into_inner())
                    } else {
                        Err(invalid(
                            Some(spec.span()),
                            format!(
                                "`[lint] {key}` entry `{}` names no rule: use a code (LNK001), a name, a prefix (LNK) or ALL (see `skillcheck rules`)",
                                spec.get_ref()
                            ),
                        ))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        };
        config.selection.select = raw.lint.select.map(|s| specs(s, "select")).transpose()?;
        config.selection.extend_select = specs(raw.lint.extend_select, "extend-select")?;
        config.selection.ignore = specs(raw.lint.ignore, "ignore")?;
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
            config.selection.severities.insert(rule.code, severity);
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
        for (target, table) in [
            (Target::Spec, raw.pack.targets.spec),
            (Target::ClaudeCode, raw.pack.targets.claude_code),
            (Target::ClaudeAi, raw.pack.targets.claude_ai),
        ] {
            let mut folders: Vec<String> = Vec::new();
            for entry in table.map(|t| t.bundle).unwrap_or_default() {
                let folder = entry.get_ref().trim_end_matches('/');
                let problem = bundle_folder_problem(folder).or_else(|| {
                    folders
                        .iter()
                        .find(|f| within(folder, f) || within(f, folder))
                        .map(|f| format!("overlaps `{f}`, listed before; keep one"))
                });
                if let Some(problem) = problem {
                    return Err(invalid(
                        Some(entry.span()),
                        format!(
                            "`[pack.targets.{target}] bundle` folder `{}` {problem}",
                            entry.get_ref()
                        ),
                    ));
                }
                folders.push(folder.to_owned());
            }
            if !folders.is_empty() {
                config.pack.bundles.insert(target, folders);
            }
        }
        if config.pack.max_file_bytes > config.pack.max_total_bytes {
            config.pack.max_file_bytes = config.pack.max_total_bytes;
        }
        Ok(config)
    }
}

/// Why `folder` cannot be bundled, if it cannot: it must be a folder path relative to the
/// skill root.
fn bundle_folder_problem(folder: &str) -> Option<String> {
    if folder.is_empty() {
        Some("is empty or `/`: name a folder of the skill, such as `assets/templates`".into())
    } else if folder.starts_with('/') || folder.contains('\\') {
        Some("must be relative to the skill root, with `/` between folders".into())
    } else if folder
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == ".." || c.contains(['*', '?', '[']))
    {
        Some("must be a plain folder path (no `.`, `..`, `//` or glob characters)".into())
    } else {
        None
    }
}

/// True when `path` is `folder` or lies inside it.
fn within(path: &str, folder: &str) -> bool {
    path == folder
        || path
            .strip_prefix(folder)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The nearest `skillcheck.toml` at or above `start`, shown relative to the current folder
/// when it lies under it.
pub fn find_config(start: &Path) -> Option<PathBuf> {
    let absolute = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
    let found = absolute
        .ancestors()
        .map(|dir| dir.join(CONFIG_FILE))
        .find(|p| p.is_file())?;
    // The same for every skill of a run: canonicalized once (nothing changes the folder).
    static CWD: OnceLock<Option<PathBuf>> = OnceLock::new();
    let cwd = CWD.get_or_init(|| std::env::current_dir().and_then(std::fs::canonicalize).ok());
    match cwd.as_deref().and_then(|cwd| found.strip_prefix(cwd).ok()) {
        Some(rel) => Some(rel.to_path_buf()),
        None => Some(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(
            c.severity(&rules::structure::ORPHAN_FILE),
            Some(Severity::Error)
        );
        assert_eq!(c.severity(&rules::secrets::SECRET), None);
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
}
