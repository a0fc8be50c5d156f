//! Secrets: tokens of well-known shapes that look live, and private keys.

use std::sync::LazyLock;

use regex::Regex;

use crate::diag::{Diagnostic, SourceLine};
use crate::engine::{Context, Sink};
use crate::parse::markdown::LineIndex;
use crate::registry::{SECRET_SCANNING, declare_rules};
use crate::source::must_not_ship;

declare_rules! {
    SECRET = "SEC001", "secret", Error, on, fixable: false,
        summary: "something that looks like a live secret (API key, token, private key)",
        why: "A skill is shared and packaged; a key in it is a leaked key.",
        example: "ANTHROPIC_API_KEY=sk-ant-api03-<95 random characters>",
        fix: "Revoke the key, remove it, and use a placeholder such as `sk-ant-...` or an environment variable.",
        source: SECRET_SCANNING;
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    for file in &ctx.source.files {
        // Inside a cache or an environment folder, the folder is the finding.
        if !must_not_ship(&file.path).is_some_and(|m| m.pattern.ends_with('/'))
            && let Some(text) = file.text()
        {
            secrets(&file.path, text, sink);
        }
    }
}

/// Well-known token shapes. The regex starts with literal prefixes so that the search is a
/// fast literal scan; the boundaries around a token are checked in code ([`is_token_char`]).
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
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
    for m in TOKEN.find_iter(text) {
        // Part of a longer identifier (`my_ghp_...`, a 17th AWS character): not this token.
        let glued_before = m.start() > 0 && is_token_char(bytes[m.start() - 1]);
        let glued_after = bytes.get(m.end()).is_some_and(|&b| is_token_char(b));
        if !glued_before && !glued_after && looks_live(m.as_str()) {
            found.push((m.start(), m.end(), mask(m.as_str()), "an API key or token"));
        }
    }
    // The regex starts with this literal: without it there is nothing to compile or search.
    let private_keys = memchr::memmem::find(bytes, b"-----BEGIN ")
        .into_iter()
        .flat_map(|_| PRIVATE_KEY.captures_iter(text));
    for cap in private_keys {
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
            &SECRET,
            Diagnostic::new(&SECRET, path, format!("{what} that looks live: `{masked}`"))
                .at(line, col)
                .help("revoke it now, remove it, and read it from an environment variable; use a placeholder like `sk-ant-...` in docs")
                .source_line(Some(SourceLine {
                    text: shown,
                    highlight,
                })),
        );
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
            let hits: Vec<_> = TOKEN
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
            let hits: Vec<_> = TOKEN
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
}
