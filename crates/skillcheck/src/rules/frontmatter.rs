//! SKILL.md frontmatter: present, closed, valid YAML, the spec's keys with the right types.

use crate::diag::Diagnostic;
use crate::engine::{Context, Frontmatter, MdFile, Sink};
use crate::parse::yaml::{self, Node, Pos, ScalarKind};
use crate::registry::{BEST, Rule, SPEC, SPEC_CC, declare_rules};
use crate::settings::Target;
use crate::source::SkillSource;
use crate::text::nearest;

declare_rules! {
    FRONTMATTER_MISSING = "FM001", "frontmatter-missing", Error, on, fixable: false,
        summary: "SKILL.md does not open with a `---` YAML frontmatter block",
        why: "Clients read name and description from the frontmatter to decide when to load the skill; without it the skill is never discovered.",
        example: "# My skill\nSome text",
        fix: "Start SKILL.md with `---`, the `name:` and `description:` keys, and a closing `---` line.",
        source: SPEC;
    FRONTMATTER_UNCLOSED = "FM002", "frontmatter-unclosed", Error, on, fixable: false,
        summary: "the frontmatter's closing `---` is missing or does not stand on its own line",
        why: "Parsers split on a line that is exactly `---`; anything else makes the whole file frontmatter or breaks the YAML.",
        example: "---\nname: x\ndescription: y ---",
        fix: "Put the closing `---` alone on its own line.",
        source: SPEC;
    YAML_INVALID = "FM003", "frontmatter-yaml-invalid", Error, on, fixable: false,
        summary: "the frontmatter is not valid YAML",
        why: "A client that cannot parse the frontmatter skips the skill.",
        example: "---\nname: x\ndescription: Use when: a: b\n---",
        fix: "Quote values that contain `: ` or start with special characters, e.g. `description: \"Use when: ...\"`.",
        source: SPEC;
    FRONTMATTER_NOT_MAPPING = "FM004", "frontmatter-not-mapping", Error, on, fixable: false,
        summary: "the frontmatter is not a YAML mapping of keys to values",
        why: "The spec defines the frontmatter as a mapping (`key: value` lines).",
        example: "---\n- name\n- description\n---",
        fix: "Write one `key: value` per line.",
        source: SPEC;
    DUPLICATE_KEY = "FM005", "frontmatter-duplicate-key", Error, on, fixable: false,
        summary: "a frontmatter key appears twice",
        why: "YAML forbids duplicate keys; parsers silently keep either the first or the last value, so clients disagree about what the skill says.",
        example: "---\nname: a\nname: b\n---",
        fix: "Keep one of the two keys.",
        source: SPEC;
    UNKNOWN_KEY = "FM006", "frontmatter-unknown-key", Error, on, fixable: false,
        summary: "a frontmatter key that the target does not allow",
        why: "The Agent Skills spec allows only name, description, license, allowed-tools, metadata and compatibility; strict validators reject other keys. Claude Code documents more keys (use `--target claude-code`); put anything else under `metadata`.",
        example: "---\nname: x\ndescription: y\nauthor: me\n---",
        fix: "Move custom keys under `metadata:`, fix the typo, or choose the target that documents the key.",
        source: SPEC_CC;
    NAME_MISSING = "FM007", "name-missing", Error, on, fixable: false,
        summary: "the frontmatter has no `name`",
        why: "`name` is required: it identifies the skill and must equal its folder name.",
        example: "---\ndescription: y\n---",
        fix: "Add `name: <folder-name>`.",
        source: SPEC;
    NAME_INVALID = "FM008", "name-invalid", Error, on, fixable: false,
        summary: "`name` is empty, longer than 64 characters, or not lowercase letters, digits and single hyphens",
        why: "The spec restricts names so that they are valid folder names and command names everywhere.",
        example: "name: My_Skill--v2-",
        fix: "Use 1-64 lowercase letters, digits and hyphens, with no leading, trailing or doubled hyphen.",
        source: SPEC;
    NAME_MISMATCH = "FM009", "name-folder-mismatch", Error, on, fixable: false,
        summary: "`name` differs from the skill's folder name",
        why: "The spec requires the name to equal the parent folder; clients install and address the skill by folder.",
        example: "skills/pdf-tools/SKILL.md with `name: pdf`",
        fix: "Rename the folder or the `name` so that they are equal.",
        source: SPEC;
    DESCRIPTION_MISSING = "FM010", "description-missing", Error, on, fixable: false,
        summary: "the frontmatter has no `description`",
        why: "The description is all the agent sees before loading the skill; without it the skill is never chosen.",
        example: "---\nname: x\n---",
        fix: "Add `description:` saying what the skill does and when to use it.",
        source: SPEC;
    DESCRIPTION_INVALID = "FM011", "description-invalid", Error, on, fixable: false,
        summary: "`description` is empty, longer than 1024 characters, or contains `<` or `>`",
        why: "Clients cut long descriptions and strip XML-like tags, so the agent sees something else than the author wrote.",
        example: "description: Builds <b>APIs</b>",
        fix: "Write 1-1024 characters of plain text without angle brackets.",
        source: SPEC;
    DESCRIPTION_NO_TRIGGER = "FM012", "description-no-trigger", Warning, on, fixable: false,
        summary: "the description does not say when to use the skill",
        why: "Agents pick skills by matching the task against the description; one that only says what the skill is gets picked too rarely.",
        example: "description: A FastAPI toolkit.",
        fix: "Add a sentence like \"Use when the user asks to ...\".",
        source: BEST;
    COMPATIBILITY_TOO_LONG = "FM013", "compatibility-too-long", Error, on, fixable: false,
        summary: "`compatibility` is longer than 500 characters",
        why: "The spec caps the field at 500 characters.",
        example: "compatibility: <600 characters>",
        fix: "Shorten it; move details into the body.",
        source: SPEC;
    METADATA_INVALID = "FM014", "metadata-invalid", Error, on, fixable: false,
        summary: "`metadata` is not a map of string keys to string values",
        why: "The spec defines metadata as a string-to-string map; nested values or numbers break strict clients.",
        example: "metadata:\n  version: 1.0\n  tags: [a, b]",
        fix: "Quote the values (`version: \"1.0\"`) and flatten lists into strings.",
        source: SPEC;
    FIELD_TYPE = "FM015", "frontmatter-field-type", Error, on, fixable: false,
        summary: "a frontmatter value has the wrong type",
        why: "A value that YAML reads as a number, boolean, list or null where a string is expected (or the reverse) is rejected or misread by clients.",
        example: "name: 2024\ndisable-model-invocation: \"yes\"",
        fix: "Quote strings; write booleans as `true`/`false`.",
        source: SPEC_CC;
}

const SPEC_KEYS: [&str; 6] = [
    "name",
    "description",
    "license",
    "allowed-tools",
    "metadata",
    "compatibility",
];

/// Extra keys documented by Claude Code, with their expected type.
const CLAUDE_CODE_KEYS: [(&str, Expect); 8] = [
    ("argument-hint", Expect::Str),
    ("disable-model-invocation", Expect::Bool),
    ("user-invocable", Expect::Bool),
    ("model", Expect::Str),
    ("context", Expect::Str),
    ("agent", Expect::Str),
    ("hooks", Expect::Map),
    ("when_to_use", Expect::Str),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Str,
    Bool,
    Map,
    StrOrList,
}

/// [`has_trigger`]'s byte for a non-ASCII word character.
const OTHER_WORD: u8 = 0x80;
/// [`has_trigger`]'s byte for any other non-ASCII character.
const OTHER_NON_WORD: u8 = 0x81;

/// Whether the description says when to use the skill: what the regex `TRIGGER` in the
/// tests matches, by hand, since compiling that regex cost more than linting a small skill.
/// Each character becomes one byte: ASCII lowercased; `ſ` and the Kelvin sign, which Unicode
/// case folding equates with `s` and `k`, as those; any other word character as
/// [`OTHER_WORD`], anything else as [`OTHER_NON_WORD`]. The regex's literals are ASCII and
/// its `\b` is Unicode's, so that is all it sees.
fn has_trigger(desc: &str) -> bool {
    let folded: Vec<u8> = desc
        .chars()
        .map(|c| match c {
            c if c.is_ascii() => c.to_ascii_lowercase() as u8,
            '\u{17F}' => b's',
            '\u{212A}' => b'k',
            c if regex_syntax::is_word_character(c) => OTHER_WORD,
            _ => OTHER_NON_WORD,
        })
        .collect();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == OTHER_WORD;
    (0..folded.len())
        .filter(|&i| word(folded[i]) && (i == 0 || !word(folded[i - 1])))
        .any(|i| trigger_at(&folded[i..], word))
}

/// `TRIGGER`'s alternatives at the start of `s` (folded, at a word boundary).
fn trigger_at(s: &[u8], word: impl Fn(u8) -> bool) -> bool {
    const USE_WHEN: [&[u8]; 12] = [
        b"when",
        b"whenever",
        b"for",
        b"to",
        b"if",
        b"on",
        b"in",
        b"before",
        b"after",
        b"during",
        b"while",
        b"proactively",
    ];
    let ends_word = |rest: &[u8]| rest.first().is_none_or(|&b| !word(b));
    if let Some(rest) = s.strip_prefix(b"use ") {
        let objects: [&[u8]; 5] = [b"", b"it ", b"this ", b"this skill ", b"me "];
        let after_object = objects
            .iter()
            .filter_map(|&object| rest.strip_prefix(object));
        for r in after_object {
            if USE_WHEN.iter().any(|w| r.starts_with(w)) {
                return true;
            }
        }
    }
    if let Some(rest) = s.strip_prefix(b"help") {
        let rest = rest.strip_prefix(b"s").unwrap_or(rest);
        if let Some(rest) = rest.strip_prefix(b" ") {
            let objects: [&[u8]; 3] = [b"", b"you ", b"users "];
            let after_object = objects
                .iter()
                .filter_map(|&object| rest.strip_prefix(object));
            for r in after_object {
                let verbs: [&[u8]; 3] = [b"with", b"to", b"when"];
                if verbs.iter().any(|w| r.starts_with(w)) {
                    return true;
                }
            }
        }
    }
    let phrases: [&[u8]; 8] = [
        b"should be used",
        b"if the user",
        b"trigger",
        b"invoke",
        b"ask",
        b"request",
        b"need to",
        b"needs to",
    ];
    s.strip_prefix(b"whenever").is_some_and(ends_word)
        || s.strip_prefix(b"when").is_some_and(ends_word)
        || phrases.iter().any(|p| s.starts_with(p))
}

struct Ctx<'a, 'b, 'c> {
    file: &'a MdFile<'a>,
    sink: &'b mut Sink<'c>,
    /// File line of YAML line 1.
    line_offset: usize,
}

impl Ctx<'_, '_, '_> {
    fn at(&mut self, rule: &Rule, pos: Pos, len: usize, message: String, help: Option<String>) {
        let line = pos.line + self.line_offset;
        let d = Diagnostic::new(rule, "SKILL.md", message)
            .at(line, pos.col)
            .with_help(help)
            .source_line(self.file.source_line(line, pos.col, len));
        self.sink.emit(rule, d);
    }
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    let (Some(file), Some(frontmatter)) = (ctx.skill_md(), &ctx.frontmatter) else {
        return;
    };
    let target = ctx.settings.target;
    let top = Pos { line: 1, col: 1 };
    let mut c = Ctx {
        file,
        sink,
        line_offset: 0,
    };
    let (nodes, lines) = match frontmatter {
        Frontmatter::Missing => {
            return c.at(
                &FRONTMATTER_MISSING,
                top,
                0,
                "SKILL.md does not start with a `---` frontmatter block".into(),
                Some("begin the file with `---`, `name: ...`, `description: ...`, `---`".into()),
            );
        }
        Frontmatter::Unclosed {
            glued_line: Some(line),
        } => {
            return c.at(
                &FRONTMATTER_UNCLOSED,
                Pos {
                    line: *line,
                    col: 1,
                },
                0,
                "the frontmatter's closing `---` does not stand on its own line".into(),
                Some("put `---` alone on a line".into()),
            );
        }
        Frontmatter::Unclosed { glued_line: None } => {
            return c.at(
                &FRONTMATTER_UNCLOSED,
                top,
                3,
                "the frontmatter is never closed".into(),
                Some("add a line `---` after the last key".into()),
            );
        }
        Frontmatter::Parsed { nodes, lines } => (nodes, *lines),
    };
    c.line_offset = 1;
    let docs = match nodes {
        Ok(d) => d,
        Err(e) => {
            let pos = Pos {
                line: e.pos.line.clamp(1, lines.saturating_sub(1).max(1)),
                col: e.pos.col,
            };
            return c.at(
                &YAML_INVALID,
                pos,
                1,
                format!("frontmatter is not valid YAML: {}", e.message),
                Some("quote values that contain `: `, `#` or start with `[`, `{`, `*`, `&`, `!`, `|`, `>`".into()),
            );
        }
    };
    let Some(Node::Map { entries, .. }) = docs.first() else {
        let what = docs.first().map_or("empty", Node::type_name);
        return c.at(
            &FRONTMATTER_NOT_MAPPING,
            Pos { line: 0, col: 1 },
            3,
            format!("the frontmatter must be a mapping of keys to values, found {what}"),
            Some("write `name: ...` and `description: ...` lines".into()),
        );
    };
    let mut dups = Vec::new();
    yaml::duplicate_keys(&docs[0], &mut dups);
    for (key, first, dup) in dups {
        c.at(
            &DUPLICATE_KEY,
            dup,
            key.chars().count(),
            format!("duplicate key `{key}` (first at line {})", first.line + 1),
            Some("keep only one of them".into()),
        );
    }
    let get = |k: &str| entries.iter().find(|(key, _)| key.as_str() == Some(k));
    for (key, value) in entries {
        let Some(k) = key.as_str() else {
            c.at(
                &FIELD_TYPE,
                key.pos(),
                1,
                format!(
                    "frontmatter keys must be strings, found {}",
                    key.type_name()
                ),
                None,
            );
            continue;
        };
        check_key(&mut c, k, key, value, target);
    }
    match get("name") {
        None => c.at(
            &NAME_MISSING,
            Pos { line: 0, col: 1 },
            3,
            "the frontmatter has no `name`".into(),
            Some(format!("add `name: {}`", ctx.source.name)),
        ),
        Some((key, value)) => check_name(&mut c, key, value, ctx.source),
    }
    match get("description") {
        None => c.at(
            &DESCRIPTION_MISSING,
            Pos { line: 0, col: 1 },
            3,
            "the frontmatter has no `description`".into(),
            Some("add `description:` saying what the skill does and when to use it".into()),
        ),
        Some((key, value)) => check_description(&mut c, key, value),
    }
}

fn allowed(target: Target, key: &str) -> Option<Expect> {
    let spec = match key {
        "name" | "description" | "license" | "compatibility" => Some(Expect::Str),
        "allowed-tools" => Some(Expect::StrOrList),
        "metadata" => Some(Expect::Map),
        _ => None,
    };
    if spec.is_some() || target != Target::ClaudeCode {
        return spec;
    }
    CLAUDE_CODE_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|&(_, e)| e)
}

fn check_key(ctx: &mut Ctx, k: &str, key: &Node, value: &Node, target: Target) {
    let Some(expect) = allowed(target, k) else {
        let is_cc = CLAUDE_CODE_KEYS.iter().any(|(c, _)| *c == k);
        let candidates: Vec<&str> = SPEC_KEYS
            .iter()
            .copied()
            .chain(
                CLAUDE_CODE_KEYS
                    .iter()
                    .map(|(c, _)| *c)
                    .filter(|_| target == Target::ClaudeCode),
            )
            .collect();
        let help = if is_cc {
            format!(
                "`{k}` is a Claude Code extension: lint with `--target claude-code` (or `target = \"claude-code\"` in skillcheck.toml), or remove it"
            )
        } else if let Some(m) = nearest(k, candidates.iter().copied()) {
            format!("did you mean `{m}`?")
        } else {
            format!(
                "move it under `metadata:` (allowed keys: {})",
                candidates.join(", ")
            )
        };
        ctx.at(
            &UNKNOWN_KEY,
            key.pos(),
            k.chars().count(),
            format!("key `{k}` is not allowed by the {target} target"),
            Some(help),
        );
        return;
    };
    let kind = value.scalar_kind();
    let ok = match expect {
        Expect::Str => kind == Some(ScalarKind::Str),
        Expect::Bool => kind == Some(ScalarKind::Bool),
        Expect::Map => matches!(value, Node::Map { .. }),
        Expect::StrOrList => match value {
            Node::Seq { items, .. } => items
                .iter()
                .all(|i| i.scalar_kind() == Some(ScalarKind::Str)),
            _ => kind == Some(ScalarKind::Str),
        },
    };
    if !ok {
        // Missing or empty name/description are reported by their own rules.
        if matches!(k, "name" | "description") && kind == Some(ScalarKind::Null) {
            return;
        }
        let want = match expect {
            Expect::Str => "a string",
            Expect::Bool => "`true` or `false`",
            Expect::Map => "a mapping",
            Expect::StrOrList => "a string or a list of strings",
        };
        let help = match (expect, kind) {
            (Expect::Str, Some(_)) => Some(format!("quote the value: `{k}: \"...\"`")),
            (Expect::Bool, Some(ScalarKind::Str)) => {
                Some("write `true` or `false` without quotes".into())
            }
            _ => None,
        };
        if k == "metadata" {
            ctx.at(
                &METADATA_INVALID,
                value.pos(),
                0,
                format!(
                    "`metadata` must be a mapping of strings to strings, found {}",
                    value.type_name()
                ),
                help,
            );
        } else {
            ctx.at(
                &FIELD_TYPE,
                value.pos(),
                0,
                format!("`{k}` must be {want}, found {}", value.type_name()),
                help,
            );
        }
        return;
    }
    if k == "metadata"
        && let Node::Map { entries, .. } = value
    {
        for (mk, mv) in entries {
            for (node, what) in [(mk, "key"), (mv, "value")] {
                if node.scalar_kind() != Some(ScalarKind::Str) {
                    let name = mk.as_str().unwrap_or("?");
                    ctx.at(
                            &METADATA_INVALID,
                            node.pos(),
                            1,
                            format!("`metadata` {what} of `{name}` must be a string, found {}", node.type_name()),
                            Some("quote it, e.g. `version: \"1.0\"`; flatten lists and maps into strings".into()),
                        );
                }
            }
        }
    }
    if k == "compatibility"
        && let Some(v) = value.as_str()
    {
        let n = v.chars().count();
        if n > 500 {
            ctx.at(
                &COMPATIBILITY_TOO_LONG,
                value.pos(),
                0,
                format!("`compatibility` is {n} characters, over 500"),
                Some("shorten it; move details into the body".into()),
            );
        }
    }
}

fn check_name(ctx: &mut Ctx, key: &Node, value: &Node, source: &SkillSource) {
    let Some(name) = value.as_str() else { return };
    if value.scalar_kind() != Some(ScalarKind::Str) && value.scalar_kind() != Some(ScalarKind::Null)
    {
        return; // reported as a type error
    }
    let len = name.chars().count();
    let value_pos = if value.scalar_kind() == Some(ScalarKind::Null) {
        key.pos()
    } else {
        value.pos()
    };
    let problem = if name.is_empty() {
        Some("`name` is empty".to_string())
    } else if len > 64 {
        Some(format!("`name` is {len} characters, over 64"))
    } else if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_lowercase() && c.is_alphabetic() || c.is_ascii_digit() || c == '-'))
    {
        Some(format!(
            "`name` contains `{c}`: only lowercase letters, digits and hyphens are allowed"
        ))
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("`name` starts or ends with a hyphen".to_string())
    } else if name.contains("--") {
        Some("`name` contains a doubled hyphen".to_string())
    } else {
        None
    };
    let pos = value_pos;
    let shown = len.max(1);
    if let Some(problem) = problem {
        let suggestion = suggest_name(name);
        let help = if suggestion.is_empty() {
            "use 1-64 lowercase letters, digits and single hyphens".to_string()
        } else {
            format!("for example `{suggestion}`")
        };
        ctx.at(&NAME_INVALID, pos, shown, problem, Some(help));
    } else if name != source.name {
        ctx.at(
            &NAME_MISMATCH,
            pos,
            shown,
            format!(
                "`name: {name}` differs from the skill's folder name `{}`",
                source.name
            ),
            Some(format!(
                "rename the folder to `{name}`, or set `name: {}`",
                source.name
            )),
        );
    }
}

fn suggest_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() && (c.is_ascii() || c.is_lowercase()) {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    out.chars()
        .take(64)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

fn check_description(ctx: &mut Ctx, key: &Node, value: &Node) {
    let Some(desc) = value.as_str() else { return };
    if !matches!(
        value.scalar_kind(),
        Some(ScalarKind::Str | ScalarKind::Null)
    ) {
        return;
    }
    let pos = if value.scalar_kind() == Some(ScalarKind::Null) {
        key.pos()
    } else {
        value.pos()
    };
    let len = desc.chars().count();
    if desc.trim().is_empty() {
        ctx.at(
            &DESCRIPTION_INVALID,
            pos,
            0,
            "`description` is empty".into(),
            Some("say what the skill does and when to use it".into()),
        );
        return;
    }
    if len > 1024 {
        ctx.at(
            &DESCRIPTION_INVALID,
            pos,
            0,
            format!("`description` is {len} characters, over 1024"),
            Some("shorten it; details belong in the body".into()),
        );
    }
    if desc.contains('<') || desc.contains('>') {
        ctx.at(
            &DESCRIPTION_INVALID,
            pos,
            0,
            "`description` contains `<` or `>`; clients strip XML-like tags".into(),
            Some("write the text without angle brackets".into()),
        );
    }
    if !has_trigger(desc) {
        ctx.at(
            &DESCRIPTION_NO_TRIGGER,
            pos,
            0,
            "`description` does not say when to use the skill".into(),
            Some("add a sentence like \"Use when the user asks to ...\"".into()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{has_trigger, suggest_name};
    use regex::Regex;
    use std::sync::LazyLock;

    /// What FM012 matched before [`has_trigger`], as an oracle.
    static TRIGGER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(use (it |this |this skill |me )?(when|whenever|for|to|if|on|in|before|after|during|while|proactively)|should be used|when(ever)?\b|if the user|triggers?|invoke|asks?|requests?|needs? to|helps? (you |users )?(with|to|when))")
            .expect("static regex")
    });

    proptest::proptest! {
        #[test]
        fn trigger_by_hand_matches_the_regex(
            desc in r"([A-Za-z_]{0,3}|[éſ\u{212A}١\u{200D}—’]|use |Use |it |this |skill |me |when|ever|Whenever |for |to |in |help|s |you |users |with|should be used|if the user|trigger|INVOKE|ask|request|need|needs| to|[ .,;:\-]){0,12}"
        ) {
            proptest::prop_assert_eq!(has_trigger(&desc), TRIGGER.is_match(&desc), "{:?}", desc);
        }
    }

    #[test]
    fn name_suggestions() {
        assert_eq!(suggest_name("My_Skill--v2-"), "my-skill-v2");
        assert_eq!(suggest_name("---"), "");
    }
}
