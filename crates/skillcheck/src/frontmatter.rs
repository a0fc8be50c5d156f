//! SKILL.md frontmatter rules.

use std::sync::LazyLock;

use regex::Regex;

use crate::config::{Config, Target};
use crate::diag::{Diagnostic, SkillStats};
use crate::lint::{Parsed, Sink, source_line};
use crate::rules::{self, Rule};
use crate::source::SkillSource;
use crate::text::nearest;
use crate::yaml::{self, Node, Pos, ScalarKind};

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

static TRIGGER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(use (it |this |this skill )?(when|whenever|for|to|if|on|in)|when(ever)?\b|if the user|triggers?|invoke|asks?|requests?|needs? to|helps? (you |users )?(with|to|when))")
        .expect("static regex")
});

struct Ctx<'a, 'b, 'c> {
    file: &'a Parsed<'a>,
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
            .source_line(source_line(
                self.file.text,
                &self.file.index,
                line,
                pos.col,
                len,
            ));
        self.sink.emit(rule, d);
    }
}

pub(crate) fn check(
    source: &SkillSource,
    file: &Parsed,
    target: Target,
    config: &Config,
    sink: &mut Sink,
    stats: &mut SkillStats,
) {
    let text = file.text.strip_prefix('\u{feff}').unwrap_or(file.text);
    // The frontmatter is short: stop at the closing line rather than splitting the whole file.
    let mut lines: Vec<&str> = Vec::new();
    for (i, l) in text.split('\n').enumerate() {
        let l = l.trim_end_matches('\r');
        lines.push(l);
        if i > 0 && l.trim_end() == "---" || i == 0 && l.trim_end() != "---" {
            break;
        }
    }
    let top = Pos { line: 1, col: 1 };
    let mut ctx = Ctx {
        file,
        sink,
        line_offset: 0,
    };
    let body_start = crate::markdown::body_start(file.text);
    let body = &file.text[body_start..];
    stats.body_lines = if body.is_empty() {
        0
    } else {
        file.index.line_count() - file.index.line(body_start) + 1
            - usize::from(body.ends_with('\n'))
    };
    stats.body_tokens = estimate_tokens(body);
    stats.metadata_tokens = estimate_tokens(&file.text[..body_start]);
    size_rules(&mut ctx, config, stats, body_start);

    if lines.first().map(|l| l.trim_end()) != Some("---") {
        ctx.at(
            &rules::FRONTMATTER_MISSING,
            top,
            0,
            "SKILL.md does not start with a `---` frontmatter block".into(),
            Some("begin the file with `---`, `name: ...`, `description: ...`, `---`".into()),
        );
        return;
    }
    let close = lines.iter().skip(1).position(|l| l.trim_end() == "---");
    let Some(close) = close.map(|i| i + 1) else {
        let glued = lines.iter().skip(1).position(|l| {
            let t = l.trim_end();
            t.starts_with("---") || t.ends_with("---")
        });
        match glued {
            Some(i) => ctx.at(
                &rules::FRONTMATTER_UNCLOSED,
                Pos {
                    line: i + 1,
                    col: 1,
                },
                0,
                "the frontmatter's closing `---` does not stand on its own line".into(),
                Some("put `---` alone on a line".into()),
            ),
            None => ctx.at(
                &rules::FRONTMATTER_UNCLOSED,
                top,
                3,
                "the frontmatter is never closed".into(),
                Some("add a line `---` after the last key".into()),
            ),
        }
        return;
    };
    let yaml_text = lines[1..close].join("\n");
    ctx.line_offset = 1;
    let docs = match yaml::parse(&yaml_text) {
        Ok(d) => d,
        Err(e) => {
            let pos = Pos {
                line: e.pos.line.clamp(1, close.max(1)),
                col: e.pos.col,
            };
            ctx.at(
                &rules::YAML_INVALID,
                pos,
                1,
                format!("frontmatter is not valid YAML: {}", e.message),
                Some("quote values that contain `: `, `#` or start with `[`, `{`, `*`, `&`, `!`, `|`, `>`".into()),
            );
            return;
        }
    };
    let Some(Node::Map { entries, .. }) = docs.first() else {
        let what = docs.first().map_or("empty", Node::type_name);
        ctx.at(
            &rules::FRONTMATTER_NOT_MAPPING,
            Pos { line: 0, col: 1 },
            3,
            format!("the frontmatter must be a mapping of keys to values, found {what}"),
            Some("write `name: ...` and `description: ...` lines".into()),
        );
        return;
    };
    let mut dups = Vec::new();
    yaml::duplicate_keys(&docs[0], &mut dups);
    for (key, first, dup) in dups {
        ctx.at(
            &rules::DUPLICATE_KEY,
            dup,
            key.chars().count(),
            format!("duplicate key `{key}` (first at line {})", first.line + 1),
            Some("keep only one of them".into()),
        );
    }

    let get = |k: &str| entries.iter().find(|(key, _)| key.as_str() == Some(k));
    for (key, value) in entries {
        let Some(k) = key.as_str() else {
            ctx.at(
                &rules::FIELD_TYPE,
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
        check_key(&mut ctx, k, key, value, target);
    }

    match get("name") {
        None => ctx.at(
            &rules::NAME_MISSING,
            Pos { line: 0, col: 1 },
            3,
            "the frontmatter has no `name`".into(),
            Some(format!("add `name: {}`", source.name)),
        ),
        Some((key, value)) => check_name(&mut ctx, key, value, source, target),
    }
    match get("description") {
        None => ctx.at(
            &rules::DESCRIPTION_MISSING,
            Pos { line: 0, col: 1 },
            3,
            "the frontmatter has no `description`".into(),
            Some("add `description:` saying what the skill does and when to use it".into()),
        ),
        Some((key, value)) => check_description(&mut ctx, key, value),
    }
}

fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

fn size_rules(ctx: &mut Ctx, config: &Config, stats: &SkillStats, body_start: usize) {
    let body_first_line = ctx.file.index.line(body_start);
    if stats.body_lines > config.limits.max_body_lines {
        let line = body_first_line + config.limits.max_body_lines;
        let d = Diagnostic::new(
            &rules::BODY_TOO_LONG,
            "SKILL.md",
            format!(
                "the body is {} lines, over the limit of {}",
                stats.body_lines, config.limits.max_body_lines
            ),
        )
        .at(line, 1)
        .help("move detail into references/*.md and link it");
        ctx.sink.emit(&rules::BODY_TOO_LONG, d);
    }
    if stats.body_tokens > config.limits.max_body_tokens {
        let d = Diagnostic::new(
            &rules::BODY_TOO_MANY_TOKENS,
            "SKILL.md",
            format!(
                "the body is about {} tokens, over {}",
                stats.body_tokens, config.limits.max_body_tokens
            ),
        )
        .help("move long sections and listings into references/ or assets/");
        ctx.sink.emit(&rules::BODY_TOO_MANY_TOKENS, d);
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
            &rules::UNKNOWN_KEY,
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
                &rules::METADATA_INVALID,
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
                &rules::FIELD_TYPE,
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
                            &rules::METADATA_INVALID,
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
                &rules::COMPATIBILITY_TOO_LONG,
                value.pos(),
                0,
                format!("`compatibility` is {n} characters, over 500"),
                Some("shorten it; move details into the body".into()),
            );
        }
    }
}

fn check_name(ctx: &mut Ctx, key: &Node, value: &Node, source: &SkillSource, target: Target) {
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
        ctx.at(&rules::NAME_INVALID, pos, shown, problem, Some(help));
    } else if name != source.name {
        ctx.at(
            &rules::NAME_MISMATCH,
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
    if target == Target::ClaudeAi {
        let lower = name.to_lowercase();
        if let Some(word) = ["anthropic", "claude"]
            .into_iter()
            .find(|w| lower.contains(w))
        {
            ctx.at(
                &rules::RESERVED_NAME,
                pos,
                shown,
                format!("`name` contains the reserved word `{word}`"),
                Some("claude.ai rejects it: choose another name".into()),
            );
        }
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
            &rules::DESCRIPTION_INVALID,
            pos,
            0,
            "`description` is empty".into(),
            Some("say what the skill does and when to use it".into()),
        );
        return;
    }
    if len > 1024 {
        ctx.at(
            &rules::DESCRIPTION_INVALID,
            pos,
            0,
            format!("`description` is {len} characters, over 1024"),
            Some("shorten it; details belong in the body".into()),
        );
    }
    if desc.contains('<') || desc.contains('>') {
        ctx.at(
            &rules::DESCRIPTION_INVALID,
            pos,
            0,
            "`description` contains `<` or `>`; clients strip XML-like tags".into(),
            Some("write the text without angle brackets".into()),
        );
    }
    if !TRIGGER.is_match(desc) {
        ctx.at(
            &rules::DESCRIPTION_NO_TRIGGER,
            pos,
            0,
            "`description` does not say when to use the skill".into(),
            Some("add a sentence like \"Use when the user asks to ...\"".into()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::suggest_name;

    #[test]
    fn name_suggestions() {
        assert_eq!(suggest_name("My_Skill--v2-"), "my-skill-v2");
        assert_eq!(suggest_name("---"), "");
    }
}
