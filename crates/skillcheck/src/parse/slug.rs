//! Heading ids as GitHub renders them (design/github-slugs.md).

/// A character GitHub keeps in an id: `\p{Alphabetic}`, `\p{M}`, `\p{Nd}`, `\p{Pc}`, space
/// and `-`. That is regex's `\w` (those four classes and `\p{Join_Control}`) without
/// Join_Control, read from the same tables, so no regex is compiled.
fn is_slug_char(c: char) -> bool {
    c == ' '
        || c == '-'
        || (regex_syntax::is_word_character(c) && !matches!(c, '\u{200C}' | '\u{200D}'))
}

/// The id of one heading, given its rendered text (no duplicate handling).
pub fn slug(text: &str) -> String {
    if text.is_ascii() {
        // The same rule restricted to ASCII, without the regex: most headings are ASCII.
        return text
            .bytes()
            .filter_map(|b| match b.to_ascii_lowercase() {
                c @ (b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-') => Some(c as char),
                b' ' => Some('-'),
                _ => None,
            })
            .collect();
    }
    text.to_lowercase()
        .chars()
        .filter(|&c| is_slug_char(c))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Assigns ids to a document's headings in order, suffixing duplicates like GitHub.
#[derive(Debug, Default)]
pub struct Slugger {
    used: foldhash::HashMap<String, usize>,
}

impl Slugger {
    pub fn new() -> Self {
        Slugger::default()
    }

    pub fn next_id(&mut self, text: &str) -> String {
        let base = slug(text);
        if !self.used.contains_key(&base) {
            self.used.insert(base.clone(), 0);
            return base;
        }
        loop {
            let count = self.used.get_mut(&base).map_or(1, |c| {
                *c += 1;
                *c
            });
            let candidate = format!("{base}-{count}");
            if !self.used.contains_key(&candidate) {
                self.used.insert(candidate.clone(), 0);
                return candidate;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use regex::Regex;
    use std::sync::LazyLock;

    /// The regex the ids were computed with before, as an oracle.
    static NOT_SLUG_CHAR: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc} -]").expect("static regex")
    });

    #[test]
    fn contract_table() {
        let cases = [
            ("Step 2: Run pytest (async)", "step-2-run-pytest-async"),
            ("Use create_app()", "use-create_app"),
            ("a - b", "a---b"),
            ("I ♥ unicode", "i--unicode"),
            ("😄 unicode emoji", "-unicode-emoji"),
            (":smile: - a gemoji", "smile---a-gemoji"),
            ("Café Déjà Vu", "café-déjà-vu"),
            ("½ cup", "-cup"),
            ("Tier 1: Single API", "tier-1-single-api"),
            (
                "6.3 Agent Orchestration Endpoints",
                "63-agent-orchestration-endpoints",
            ),
        ];
        for (text, id) in cases {
            assert_eq!(slug(text), id, "{text}");
        }
    }

    #[test]
    fn duplicates_follow_the_contract() {
        let mut s = Slugger::new();
        let ids: Vec<_> = ["echo", "echo", "echo 1", "echo-1", "echo"]
            .iter()
            .map(|t| s.next_id(t))
            .collect();
        assert_eq!(ids, ["echo", "echo-1", "echo-1-1", "echo-1-2", "echo-2"]);
    }

    #[test]
    fn tabs_nbsp_and_punctuation_vanish() {
        assert_eq!(slug("a\tb\u{a0}c.d:e(f)`g`"), "abcdefg");
        assert_eq!(slug("snake_case and ÄÖ"), "snake_case-and-äö");
    }

    proptest! {
        #[test]
        fn ascii_fast_path_equals_the_regex(text in "[ -~\t]{0,40}") {
            let by_regex = NOT_SLUG_CHAR.replace_all(&text.to_lowercase(), "").replace(' ', "-");
            prop_assert_eq!(slug(&text), by_regex);
        }

        #[test]
        fn unicode_slugs_equal_the_regex(text in "[\\PC\u{200C}\u{200D}\u{17F}\u{212A}]{0,40}") {
            let by_regex = NOT_SLUG_CHAR.replace_all(&text.to_lowercase(), "").replace(' ', "-");
            prop_assert_eq!(slug(&text), by_regex);
        }

        #[test]
        fn slug_is_idempotent_and_clean(text in "\\PC{0,40}") {
            let s = slug(&text);
            prop_assert!(!s.contains(' '));
            prop_assert!(s.chars().all(|c| c == '-' || c == '_' || !c.is_ascii_punctuation()));
            prop_assert!(!s.chars().any(char::is_whitespace));
            prop_assert_eq!(slug(&s), s.clone());
        }

        #[test]
        fn slug_never_grows_in_chars_beyond_lowercasing(text in "\\PC{0,40}") {
            prop_assert!(slug(&text).chars().count() <= text.to_lowercase().chars().count());
        }

        #[test]
        fn slugger_ids_are_unique(texts in proptest::collection::vec("[a-c1 -]{0,6}", 1..30)) {
            let mut s = Slugger::new();
            let ids: Vec<_> = texts.iter().map(|t| s.next_id(t)).collect();
            let set: std::collections::HashSet<_> = ids.iter().collect();
            prop_assert_eq!(set.len(), ids.len());
        }

        #[test]
        fn first_occurrence_keeps_its_plain_slug(text in "\\PC{0,30}") {
            let mut s = Slugger::new();
            prop_assert_eq!(s.next_id(&text), slug(&text));
        }
    }
}
