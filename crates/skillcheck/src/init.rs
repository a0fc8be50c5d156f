//! `skillcheck init`: writes a `skillcheck.toml` holding every setting at its default, each
//! with a comment saying what it does, so a project starts from the whole surface and keeps
//! only what it changes.

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::config::PackConfig;
use crate::rules;
use crate::settings::{CONFIG_FILE, LintLimits, Target};

#[derive(Debug, Error)]
pub enum InitError {
    #[error(
        "{0} already exists; init never overwrites a config: edit it, or delete it and run init again"
    )]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `items` as comment lines of at most about 90 columns, each starting with `prefix`.
fn comment_list(prefix: &str, items: &[String]) -> String {
    let mut out = String::new();
    let mut line = String::from(prefix);
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() {
            format!("{item}, ")
        } else {
            item.clone()
        };
        if line.len() + piece.trim_end().len() > 90 && line.len() > prefix.len() {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from(prefix);
        }
        line.push_str(&piece);
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// The text `init` writes. Every live line holds a default, so parsing it gives exactly the
/// configuration skillcheck uses when there is no file.
pub fn default_config_text() -> String {
    let limits = LintLimits::default();
    let pack = PackConfig::default();
    let opt_in: Vec<String> = rules::all()
        .filter(|r| !r.default_on)
        .map(|r| format!("{} {}", r.code, r.name))
        .collect();
    let target = Target::default();
    let (max_body_lines, max_body_tokens, toc_min_lines) = (
        limits.max_body_lines,
        limits.max_body_tokens,
        limits.toc_min_lines,
    );
    let (max_file_bytes, max_total_bytes) = (pack.max_file_bytes, pack.max_total_bytes);
    let opt_in = comment_list("#   ", &opt_in);
    format!(
        r#"# skillcheck.toml: how `skillcheck lint` and `skillcheck pack` treat the skills in
# this folder and below (the nearest skillcheck.toml wins; it is never packed). Every
# value here is the default: change what you need and delete the rest.
# `skillcheck rules` lists the rules, `skillcheck explain CODE` explains one.

# Which client's rules apply: "spec" (the Agent Skills specification), "claude-code"
# (also Claude Code's frontmatter keys and argument placeholders) or "claude-ai" (also
# the claude.ai upload limits). `lint --target` overrides it.
target = "{target}"

[lint]
# SZ001: the longest SKILL.md body, in lines.
max_body_lines = {max_body_lines}
# SZ003: the largest SKILL.md body, in estimated tokens.
max_body_tokens = {max_body_tokens}
# SZ002: a Markdown file longer than this needs a table of contents.
toc_min_lines = {toc_min_lines}
# Which rules run, as in ruff: codes (LNK001), names (broken-link), prefixes (LNK, CHK00)
# or ALL. `select` replaces the default set (left out here: an empty list would run no
# rule), `extend-select` adds to it, `ignore` removes from it; `lint --select`,
# `--extend-select` and `--ignore` do the same from the command line. Off unless selected:
{opt_in}# select = ["ALL"]
extend-select = []
ignore = []

[rules]
# A rule's severity, outright, by code or name: "error", "warning" or "off". For example:
# STR002 = "error"

[checklist]
# Checklist items (`- [ ]` lines) that must exist, matched by their text; CHK002
# reports an entry that matches none. For example: require = ["POST /agents/run"]
require = []

[pack]
# Left out of the package, gitignore-style, besides .skillignore and the built-in
# list (.git/, .env, __pycache__/, editor files, ...).
# For example: exclude = ["drafts/", "*.log"]
exclude = []
# The largest file and the largest skill that lint and pack read, in bytes.
max_file_bytes = {max_file_bytes}
max_total_bytes = {max_total_bytes}

# Per target (spec, claude-code, claude-ai): folders that ship as one plain-text
# bundle file each, `<folder>.bundle.txt`, for a client that limits the number of
# files (claude.ai takes at most 200). Lint and diff read a bundle back as the folder;
# the skill's own scripts must read the bundle when the folder is absent. For example:
# [pack.targets.claude-ai]
# bundle = ["assets/templates"]
"#
    )
}

/// Writes `dir/skillcheck.toml` with [`default_config_text`]. Never replaces a file: the text
/// goes to a temporary file that is then linked into place only if nothing is there, so an
/// existing config (even one created meanwhile) stays as it was, and a failure leaves nothing.
pub fn write_default_config(dir: &Path) -> Result<PathBuf, InitError> {
    let path = dir.join(CONFIG_FILE);
    let io = |source| InitError::Io {
        path: path.clone(),
        source,
    };
    if path.exists() {
        return Err(InitError::Exists(path));
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| InitError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    tmp.write_all(default_config_text().as_bytes())
        .map_err(io)?;
    tmp.persist_noclobber(&path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            InitError::Exists(path.clone())
        } else {
            io(e.error)
        }
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_text_parses_to_the_defaults() {
        let path = Path::new("skillcheck.toml");
        let parsed = Config::parse(&default_config_text(), path).expect("parses");
        assert_eq!(
            parsed,
            Config {
                path: Some(path.to_path_buf()),
                ..Config::default()
            }
        );
    }

    #[test]
    fn every_setting_is_spelled_out() {
        let text = default_config_text();
        for live in [
            "target = \"spec\"\n",
            "\nmax_body_lines = 500\n",
            "\nmax_body_tokens = 5000\n",
            "\ntoc_min_lines = 100\n",
            "\nextend-select = []\n",
            "\nignore = []\n",
            "\n[rules]\n",
            "\nrequire = []\n",
            "\nexclude = []\n",
            "\nmax_file_bytes = 10485760\n",
            "\nmax_total_bytes = 52428800\n",
            "\n# select = [\"ALL\"]\n",
            "\n# [pack.targets.claude-ai]\n# bundle = [",
        ] {
            assert!(text.contains(live), "missing {live:?} in\n{text}");
        }
        // Each opt-in rule is named, so a reader knows what extend-select can add.
        for rule in rules::all().filter(|r| !r.default_on) {
            assert!(text.contains(rule.code), "{} not listed", rule.code);
        }
        // Readable in a 90-column editor without wrapping.
        assert!(text.lines().all(|l| l.len() <= 90), "{text}");
    }

    #[test]
    fn a_changed_value_is_read() {
        // The values are live settings, not comments.
        let text = default_config_text().replace("max_body_lines = 500", "max_body_lines = 42");
        let parsed = Config::parse(&text, Path::new("skillcheck.toml")).expect("parses");
        assert_eq!(parsed.limits.max_body_lines, 42);
    }
}
