//! Files that must not ship, secrets, and the claude.ai upload limits.

use std::sync::LazyLock;

use regex::Regex;

use crate::config::Target;
use crate::diag::{Diagnostic, SourceLine};
use crate::lint::Sink;
use crate::markdown::LineIndex;
use crate::rules;
use crate::source::SkillSource;

const MAX_UPLOAD_FILES: usize = 200;
const MAX_UPLOAD_BYTES: u64 = 30 * 1000 * 1000;

/// Folders of tool caches and environments: reported once per folder, never shipped.
const CACHE_DIRS: [(&str, &str); 8] = [
    ("__pycache__", "Python bytecode cache"),
    (".mypy_cache", "mypy cache"),
    (".ruff_cache", "ruff cache"),
    (".pytest_cache", "pytest cache"),
    (".ipynb_checkpoints", "Jupyter checkpoints folder"),
    (".tox", "tox environments folder"),
    (".venv", "virtual environment"),
    ("node_modules", "node_modules folder"),
];

/// The cache folder a path lies in, if any: (folder path, what it is).
fn cache_dir(path: &str) -> Option<(&str, &'static str)> {
    let mut offset = 0;
    for component in path.split('/') {
        let end = offset + component.len();
        if end < path.len()
            && let Some((_, what)) = CACHE_DIRS.iter().find(|(name, _)| *name == component)
        {
            return Some((&path[..end], what));
        }
        offset = end + 1;
    }
    None
}

/// Whether HYG001 reports this file (other rules then leave it alone).
pub(crate) fn is_unwanted(path: &str) -> bool {
    cache_dir(path).is_some() || unwanted(path).is_some()
}

pub(crate) fn check(source: &SkillSource, target: Target, sink: &mut Sink) {
    let mut cache_dirs = std::collections::BTreeMap::new();
    for file in &source.files {
        if let Some((dir, what)) = cache_dir(&file.path) {
            cache_dirs.insert(dir, what);
            continue;
        }
        if let Some(why) = unwanted(&file.path) {
            sink.emit(
                &rules::UNWANTED_FILE,
                Diagnostic::new(
                    &rules::UNWANTED_FILE,
                    &file.path,
                    format!("{why} must not ship with the skill"),
                )
                .help("delete it (and ignore it in version control)"),
            );
        }
        if let Some(text) = file.text() {
            secrets(&file.path, text, sink);
        }
    }
    for (dir, what) in cache_dirs {
        let help = if dir.ends_with("__pycache__") {
            "delete the folder; set PYTHONDONTWRITEBYTECODE=1 when running the scripts"
        } else {
            "delete the folder; keep tool caches outside the skill (or ignore them in version control)"
        };
        sink.emit(
            &rules::UNWANTED_FILE,
            Diagnostic::new(
                &rules::UNWANTED_FILE,
                dir,
                format!("{what} must not ship with the skill"),
            )
            .help(help),
        );
    }
    if target == Target::ClaudeAi {
        upload_rules(source, sink);
    }
}

fn unwanted(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name == ".env" || name.starts_with(".env.") && !is_env_template(name) {
        Some("an environment file (may hold secrets)")
    } else if name == ".DS_Store" || name == "Thumbs.db" || name == "desktop.ini" {
        Some("an operating-system metadata file")
    } else if name.ends_with(".pyc") || name.ends_with(".pyo") {
        Some("Python bytecode")
    } else if name.ends_with(".swp")
        || name.ends_with(".swo")
        || name.ends_with('~')
        || name.starts_with(".#")
        || name.starts_with('#') && name.ends_with('#')
    {
        Some("an editor swap or backup file")
    } else {
        None
    }
}

fn is_env_template(name: &str) -> bool {
    [".example", ".sample", ".template", ".dist", ".defaults"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Well-known token shapes. The regex starts with literal prefixes so that the search is a
/// fast literal scan; the boundaries around a token are checked in code ([`is_token_char`]).
static SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(",
        r"sk-ant-(?:api|admin|oat)\d\d-[A-Za-z0-9_\-]{32,}",
        r"|sk-proj-[A-Za-z0-9_\-]{32,}",
        r"|sk-(?:svcacct|admin)-[A-Za-z0-9_\-]{32,}",
        r"|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}",
        r"|gh[pousr]_[A-Za-z0-9]{36,255}",
        r"|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}",
        r"|glpat-[A-Za-z0-9_\-]{20}",
        r"|(?:AKIA|ASIA)[A-Z2-7]{16}",
        r"|xox[abposr]-[A-Za-z0-9]{10,}-[A-Za-z0-9\-]{10,}",
        r"|AIza[A-Za-z0-9_\-]{35}",
        r"|(?:sk|rk)_live_[A-Za-z0-9]{24,}",
        r"|hf_[A-Za-z0-9]{34,}",
        r"|npm_[A-Za-z0-9]{36}",
        r")",
    ))
    .expect("static regex")
});

static PRIVATE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----\r?\n((?:[A-Za-z0-9+/=:\- ]*\r?\n){0,3})([A-Za-z0-9+/=]{40,})")
        .expect("static regex")
});

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

const PLACEHOLDER_WORDS: [&str; 10] = [
    "example",
    "xxxx",
    "your",
    "placeholder",
    "change",
    "redacted",
    "dummy",
    "fake",
    "test",
    "sample",
];

/// Whether a token that has a secret's shape is random enough to be a real one.
fn looks_live(token: &str) -> bool {
    let lower = token.to_lowercase();
    if PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w)) || token.contains("...") {
        return false;
    }
    // Skip the well-known prefix: entropy is measured on the random part.
    let body = token
        .rsplit_once(['-', '_'])
        .map_or(token, |(_, b)| if b.len() >= 16 { b } else { token });
    let body = if body.len() >= 16 { body } else { token };
    let has_digit = body.chars().any(|c| c.is_ascii_digit());
    let has_alpha = body.chars().any(|c| c.is_ascii_alphabetic());
    has_digit && has_alpha && shannon_entropy(body) >= 3.0 && !has_long_run(body)
}

fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0usize; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// A run of 4+ equal characters, or of 6+ consecutive ascending characters (`abcdef`, `123456`).
fn has_long_run(s: &str) -> bool {
    let b = s.as_bytes();
    let same = b.windows(4).any(|w| w.iter().all(|&c| c == w[0]));
    let ascending = b
        .windows(6)
        .any(|w| w.windows(2).all(|p| p[1] == p[0].wrapping_add(1)));
    same || ascending
}

fn mask(token: &str) -> String {
    let keep = token
        .char_indices()
        .find(|&(i, c)| i >= 4 && (c == '-' || c == '_') && i < 14)
        .map_or(4, |(i, _)| i + 1)
        .min(token.len() / 3);
    format!("{}{}", &token[..keep], "*".repeat(8))
}

fn secrets(path: &str, text: &str, sink: &mut Sink) {
    let mut found: Vec<(usize, usize, String, &'static str)> = Vec::new();
    let bytes = text.as_bytes();
    for m in SECRET.find_iter(text) {
        // Part of a longer identifier (`my_ghp_...`, a 17th AWS character): not this token.
        let glued_before = m.start() > 0 && is_token_char(bytes[m.start() - 1]);
        let glued_after = bytes.get(m.end()).is_some_and(|&b| is_token_char(b));
        if !glued_before && !glued_after && looks_live(m.as_str()) {
            found.push((m.start(), m.end(), mask(m.as_str()), "an API key or token"));
        }
    }
    for cap in PRIVATE_KEY.captures_iter(text) {
        let (Some(whole), Some(body)) = (cap.get(0), cap.get(2)) else {
            continue;
        };
        if looks_live(body.as_str()) || shannon_entropy(body.as_str()) >= 4.0 {
            found.push((
                whole.start(),
                body.end(),
                "-----BEGIN PRIVATE KEY----- ********".into(),
                "a private key",
            ));
        }
    }
    if found.is_empty() {
        return;
    }
    let index = LineIndex::new(text);
    for (start, end, masked, what) in found {
        let (line, col) = index.line_col(text, start);
        let range = index.line_range(text, line);
        let line_text = &text[range.clone()];
        let local_start = start - range.start;
        let local_end = (end - range.start).min(line_text.len());
        let shown = format!(
            "{}{}{}",
            &line_text[..local_start],
            masked,
            &line_text[local_end..]
        );
        let highlight = local_start..local_start + masked.len();
        sink.emit(
            &rules::SECRET,
            Diagnostic::new(&rules::SECRET, path, format!("{what} that looks live: `{masked}`"))
                .at(line, col)
                .help("revoke it now, remove it, and read it from an environment variable; use a placeholder like `sk-ant-...` in docs")
                .source_line(Some(SourceLine {
                    text: shown,
                    highlight,
                })),
        );
    }
}

fn upload_rules(source: &SkillSource, sink: &mut Sink) {
    let shipped: Vec<_> = source
        .files
        .iter()
        .filter(|f| f.path != crate::config::FILE_NAME)
        .collect();
    if shipped.len() > MAX_UPLOAD_FILES {
        sink.emit(
            &rules::TOO_MANY_FILES,
            Diagnostic::new(
                &rules::TOO_MANY_FILES,
                "",
                format!(
                    "{} files, over claude.ai's limit of {MAX_UPLOAD_FILES}",
                    shipped.len()
                ),
            ),
        );
    }
    let bytes: u64 = shipped.iter().map(|f| f.bytes.len() as u64).sum();
    if bytes > MAX_UPLOAD_BYTES {
        sink.emit(
            &rules::TOO_LARGE,
            Diagnostic::new(
                &rules::TOO_LARGE,
                "",
                format!("{bytes} bytes uncompressed, over claude.ai's limit of 30 MB"),
            ),
        );
    }
    for f in &shipped {
        if f.path != "SKILL.md" && f.path.rsplit('/').next() == Some("SKILL.md") {
            sink.emit(
                &rules::UPLOAD_LAYOUT,
                Diagnostic::new(
                    &rules::UPLOAD_LAYOUT,
                    &f.path,
                    "a second SKILL.md below the skill root",
                )
                .help(
                    "claude.ai accepts exactly one SKILL.md, at `<name>/SKILL.md`: rename this one",
                ),
            );
        }
        if f.path.starts_with(".claude-plugin/") || f.path.contains("/.claude-plugin/") {
            sink.emit(
                &rules::CLAUDE_PLUGIN_DIR,
                Diagnostic::new(
                    &rules::CLAUDE_PLUGIN_DIR,
                    &f.path,
                    "`.claude-plugin/` is not allowed in an uploaded skill",
                )
                .help("remove the plugin manifest from the skill folder"),
            );
        }
        if let Some(c) = f.path.chars().find(|&c| {
            c == '\\' || c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
        }) {
            sink.emit(
                &rules::INVALID_PATH,
                Diagnostic::new(
                    &rules::INVALID_PATH,
                    &f.path,
                    format!("path contains `{}`", c.escape_default()),
                )
                .help("rename it with letters, digits, `-`, `_` and `.`"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_not_secrets() {
        for text in [
            "sk-ant-...",
            "ANTHROPIC_API_KEY=sk-ant-api03-your-key-here",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "sk-proj-change-me",
            "token = \"ghp_123456789012345678901234567890123456\"",
            "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
        ] {
            let hits: Vec<_> = SECRET
                .find_iter(text)
                .filter(|m| looks_live(m.as_str()))
                .collect();
            assert!(hits.is_empty(), "{text}: {hits:?}");
            assert!(PRIVATE_KEY.captures(text).is_none() || !text.contains("MII"));
        }
    }

    #[test]
    fn live_looking_tokens_are_secrets() {
        for text in [
            "key: sk-ant-api03-Jq8vR2mXz7LkP4nW9sT1bY6cF3hD0gA5eU8iO2rK7tQ1wZ4xV9nM3jL6pS0dH5fG8aB2cE7yR1uI4oN9mK3lJ6hQ-Xa1B2cAA",
            "GITHUB_TOKEN=ghp_Zk3q9VbX2mR7tLw8NpY4cJ1sH6dF0gKe5AuQ",
            "aws AKIAQ3EGTR7V2XNWZ5LM here",
        ] {
            let hits: Vec<_> = SECRET
                .find_iter(text)
                .filter(|m| looks_live(m.as_str()))
                .collect();
            assert_eq!(hits.len(), 1, "{text}");
        }
    }

    #[test]
    fn masks_keep_only_the_prefix() {
        assert_eq!(
            mask("ghp_Zk3q9VbX2mR7tLw8NpY4cJ1sH6dF0gKe5AuQ"),
            "ghp_********"
        );
        assert_eq!(mask("AKIAQ3EGTR7V2XNWZ5LM"), "AKIA********");
    }

    #[test]
    fn unwanted_names() {
        assert!(unwanted("a/.env").is_some());
        assert!(unwanted("assets/tpl/.env.example").is_none());
        assert!(unwanted(".DS_Store").is_some());
        assert!(unwanted("x.py.swp").is_some());
        assert!(unwanted("notes.md").is_none());
        assert_eq!(
            cache_dir("assets/t/.mypy_cache/3.11/x.db"),
            Some(("assets/t/.mypy_cache", "mypy cache"))
        );
        assert_eq!(cache_dir("assets/__pycache__"), None);
        assert!(is_unwanted("a/__pycache__/m.pyc") && !is_unwanted("a/m.py"));
    }
}
