//! The rule registry: every diagnostic skillcheck emits has an entry here.

use std::fmt::Write as _;

use crate::diag::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
    pub why: &'static str,
    pub example: &'static str,
    pub fix: &'static str,
    pub source: &'static str,
    /// `--fix` can repair some occurrences with a certain edit.
    pub fixable: bool,
}

const SPEC: &str = "Agent Skills specification (agentskills.io/specification)";
const SPEC_CC: &str =
    "Agent Skills specification; Claude Code skills documentation (target claude-code)";
const CLAUDE_AI: &str = "claude.ai skill upload rules";
const BEST: &str = "Anthropic skill authoring best practices";
const SKILLCHECK: &str = "skillcheck";

macro_rules! rules {
    ($( $id:ident = $code:literal, $name:literal, $sev:ident, fixable: $fixable:literal,
        summary: $summary:literal, why: $why:literal, example: $example:literal,
        fix: $fix:literal, source: $source:expr; )*) => {
        $( pub const $id: Rule = Rule {
            code: $code, name: $name, severity: Severity::$sev, summary: $summary, why: $why,
            example: $example, fix: $fix, source: $source, fixable: $fixable,
        }; )*
        pub const ALL: &[Rule] = &[$($id),*];
    };
}

rules! {
    FRONTMATTER_MISSING = "FM001", "frontmatter-missing", Error, fixable: false,
        summary: "SKILL.md does not open with a `---` YAML frontmatter block",
        why: "Clients read name and description from the frontmatter to decide when to load the skill; without it the skill is never discovered.",
        example: "# My skill\nSome text",
        fix: "Start SKILL.md with `---`, the `name:` and `description:` keys, and a closing `---` line.",
        source: SPEC;
    FRONTMATTER_UNCLOSED = "FM002", "frontmatter-unclosed", Error, fixable: false,
        summary: "the frontmatter's closing `---` is missing or does not stand on its own line",
        why: "Parsers split on a line that is exactly `---`; anything else makes the whole file frontmatter or breaks the YAML.",
        example: "---\nname: x\ndescription: y ---",
        fix: "Put the closing `---` alone on its own line.",
        source: SPEC;
    YAML_INVALID = "FM003", "frontmatter-yaml-invalid", Error, fixable: false,
        summary: "the frontmatter is not valid YAML",
        why: "A client that cannot parse the frontmatter skips the skill.",
        example: "---\nname: x\ndescription: Use when: a: b\n---",
        fix: "Quote values that contain `: ` or start with special characters, e.g. `description: \"Use when: ...\"`.",
        source: SPEC;
    FRONTMATTER_NOT_MAPPING = "FM004", "frontmatter-not-mapping", Error, fixable: false,
        summary: "the frontmatter is not a YAML mapping of keys to values",
        why: "The spec defines the frontmatter as a mapping (`key: value` lines).",
        example: "---\n- name\n- description\n---",
        fix: "Write one `key: value` per line.",
        source: SPEC;
    DUPLICATE_KEY = "FM005", "frontmatter-duplicate-key", Error, fixable: false,
        summary: "a frontmatter key appears twice",
        why: "YAML forbids duplicate keys; parsers silently keep either the first or the last value, so clients disagree about what the skill says.",
        example: "---\nname: a\nname: b\n---",
        fix: "Keep one of the two keys.",
        source: SPEC;
    UNKNOWN_KEY = "FM006", "frontmatter-unknown-key", Error, fixable: false,
        summary: "a frontmatter key that the target does not allow",
        why: "The Agent Skills spec allows only name, description, license, allowed-tools, metadata and compatibility; strict validators reject other keys. Claude Code documents more keys (use `--target claude-code`); put anything else under `metadata`.",
        example: "---\nname: x\ndescription: y\nauthor: me\n---",
        fix: "Move custom keys under `metadata:`, fix the typo, or choose the target that documents the key.",
        source: SPEC_CC;
    NAME_MISSING = "FM007", "name-missing", Error, fixable: false,
        summary: "the frontmatter has no `name`",
        why: "`name` is required: it identifies the skill and must equal its folder name.",
        example: "---\ndescription: y\n---",
        fix: "Add `name: <folder-name>`.",
        source: SPEC;
    NAME_INVALID = "FM008", "name-invalid", Error, fixable: false,
        summary: "`name` is empty, longer than 64 characters, or not lowercase letters, digits and single hyphens",
        why: "The spec restricts names so that they are valid folder names and command names everywhere.",
        example: "name: My_Skill--v2-",
        fix: "Use 1-64 lowercase letters, digits and hyphens, with no leading, trailing or doubled hyphen.",
        source: SPEC;
    NAME_MISMATCH = "FM009", "name-folder-mismatch", Error, fixable: false,
        summary: "`name` differs from the skill's folder name",
        why: "The spec requires the name to equal the parent folder; clients install and address the skill by folder.",
        example: "skills/pdf-tools/SKILL.md with `name: pdf`",
        fix: "Rename the folder or the `name` so that they are equal.",
        source: SPEC;
    DESCRIPTION_MISSING = "FM010", "description-missing", Error, fixable: false,
        summary: "the frontmatter has no `description`",
        why: "The description is all the agent sees before loading the skill; without it the skill is never chosen.",
        example: "---\nname: x\n---",
        fix: "Add `description:` saying what the skill does and when to use it.",
        source: SPEC;
    DESCRIPTION_INVALID = "FM011", "description-invalid", Error, fixable: false,
        summary: "`description` is empty, longer than 1024 characters, or contains `<` or `>`",
        why: "Clients cut long descriptions and strip XML-like tags, so the agent sees something else than the author wrote.",
        example: "description: Builds <b>APIs</b>",
        fix: "Write 1-1024 characters of plain text without angle brackets.",
        source: SPEC;
    DESCRIPTION_NO_TRIGGER = "FM012", "description-no-trigger", Warning, fixable: false,
        summary: "the description does not say when to use the skill",
        why: "Agents pick skills by matching the task against the description; one that only says what the skill is gets picked too rarely.",
        example: "description: A FastAPI toolkit.",
        fix: "Add a sentence like \"Use when the user asks to ...\".",
        source: BEST;
    COMPATIBILITY_TOO_LONG = "FM013", "compatibility-too-long", Error, fixable: false,
        summary: "`compatibility` is longer than 500 characters",
        why: "The spec caps the field at 500 characters.",
        example: "compatibility: <600 characters>",
        fix: "Shorten it; move details into the body.",
        source: SPEC;
    METADATA_INVALID = "FM014", "metadata-invalid", Error, fixable: false,
        summary: "`metadata` is not a map of string keys to string values",
        why: "The spec defines metadata as a string-to-string map; nested values or numbers break strict clients.",
        example: "metadata:\n  version: 1.0\n  tags: [a, b]",
        fix: "Quote the values (`version: \"1.0\"`) and flatten lists into strings.",
        source: SPEC;
    FIELD_TYPE = "FM015", "frontmatter-field-type", Error, fixable: false,
        summary: "a frontmatter value has the wrong type",
        why: "A value that YAML reads as a number, boolean, list or null where a string is expected (or the reverse) is rejected or misread by clients.",
        example: "name: 2024\ndisable-model-invocation: \"yes\"",
        fix: "Quote strings; write booleans as `true`/`false`.",
        source: SPEC_CC;
    RESERVED_NAME = "CAI001", "name-reserved-word", Error, fixable: false,
        summary: "the name contains a reserved word (`anthropic`, `claude`)",
        why: "claude.ai refuses uploads whose name contains a reserved word.",
        example: "name: claude-helper",
        fix: "Choose a name without `anthropic` or `claude`.",
        source: CLAUDE_AI;
    UPLOAD_LAYOUT = "CAI002", "upload-layout", Error, fixable: false,
        summary: "the skill does not have exactly one SKILL.md, at `<name>/SKILL.md`",
        why: "claude.ai accepts a zip whose single top folder holds SKILL.md; nested SKILL.md files are rejected.",
        example: "my-skill/SKILL.md and my-skill/sub/SKILL.md",
        fix: "Keep one SKILL.md at the top of the skill; rename or remove the others.",
        source: CLAUDE_AI;
    CLAUDE_PLUGIN_DIR = "CAI003", "upload-plugin-folder", Error, fixable: false,
        summary: "the skill contains a `.claude-plugin/` folder",
        why: "A plugin manifest is not a skill; claude.ai rejects uploads that contain one.",
        example: "my-skill/.claude-plugin/plugin.json",
        fix: "Remove `.claude-plugin/` from the skill (publish plugins separately).",
        source: CLAUDE_AI;
    TOO_MANY_FILES = "CAI004", "upload-too-many-files", Error, fixable: false,
        summary: "more than 200 files",
        why: "claude.ai rejects uploads of more than 200 files.",
        example: "a skill with 250 template files",
        fix: "Remove files, or generate them from fewer templates.",
        source: CLAUDE_AI;
    TOO_LARGE = "CAI005", "upload-too-large", Error, fixable: false,
        summary: "more than 30 MB uncompressed",
        why: "claude.ai rejects uploads over 30 MB uncompressed.",
        example: "a skill with a 40 MB dataset in assets/",
        fix: "Remove large files or fetch them at run time.",
        source: CLAUDE_AI;
    INVALID_PATH = "CAI006", "upload-invalid-path", Error, fixable: false,
        summary: "a path contains a backslash or a character that is invalid in file names",
        why: "claude.ai rejects such paths; they also break on Windows.",
        example: "assets\\template.txt, notes?.md",
        fix: "Rename the file using letters, digits, `-`, `_`, `.` and `/` folders.",
        source: CLAUDE_AI;
    BODY_TOO_LONG = "SZ001", "body-too-long", Error, fixable: false,
        summary: "the SKILL.md body is longer than the limit (500 lines by default)",
        why: "SKILL.md is loaded whole into the agent's context; long bodies cost tokens on every use. Move details into references/ files that load on demand.",
        example: "a 900-line SKILL.md",
        fix: "Move sections into references/*.md and link them; or raise `[lint] max_body_lines`.",
        source: BEST;
    REFERENCE_NO_TOC = "SZ002", "reference-missing-toc", Warning, fixable: true,
        summary: "a Markdown file over 100 lines has no table of contents near the top",
        why: "Agents often read only the first lines of a long file; a table of contents lets them jump to the section they need.",
        example: "references/api.md: 300 lines, no links to its own headings near the top",
        fix: "Add a `## Contents` list linking the file's `##` headings after its title (`--fix` does it).",
        source: BEST;
    BODY_TOO_MANY_TOKENS = "SZ003", "body-too-many-tokens", Warning, fixable: false,
        summary: "the SKILL.md body is estimated at over 5,000 tokens",
        why: "The body is loaded whole when the skill triggers; keep it lean and move detail into references.",
        example: "a SKILL.md with long code listings",
        fix: "Move long listings into references/ or assets/; or raise `[lint] max_body_tokens`.",
        source: BEST;
    BROKEN_LINK = "LNK001", "broken-link", Error, fixable: false,
        summary: "a relative link or image points at a file that does not exist in the skill",
        why: "The agent follows the link and finds nothing.",
        example: "[api](references/apis.md) when the file is references/api.md",
        fix: "Correct the path (see the \"did you mean\"), or add the file.",
        source: SKILLCHECK;
    LINK_ESCAPES = "LNK002", "link-escapes-skill", Error, fixable: false,
        summary: "a link or symlink leads outside the skill folder (absolute path, `..`, or a symlink target)",
        why: "Only the skill folder is installed or packaged; anything outside is missing on the user's machine.",
        example: "[guide](../../docs/guide.md), or a symlink to /etc/passwd",
        fix: "Copy the file into the skill and link it relatively; use a full URL for web pages.",
        source: SKILLCHECK;
    BROKEN_ANCHOR = "LNK003", "broken-anchor", Error, fixable: true,
        summary: "a `#fragment` matches no heading id (as GitHub renders it) and no `id`/`name` anchor",
        why: "The agent cannot find the section the link promises.",
        example: "[setup](guide.md#set-up) when the heading is `## Setup` (id `setup`)",
        fix: "Use the heading's id: lowercase, punctuation removed, spaces as `-` (see the \"did you mean\"). `--fix` repairs an anchor that matches exactly one heading once punctuation is ignored.",
        source: "GitHub heading anchors (design/github-slugs.md)";
    ANCHOR_CASE = "LNK004", "anchor-case-mismatch", Error, fixable: true,
        summary: "a `#fragment` matches a heading id only when case is ignored",
        why: "Fragments are case-sensitive on GitHub and in browsers.",
        example: "[x](#Setup) for `## Setup` (id `setup`)",
        fix: "Write the id in lowercase (`--fix` does it).",
        source: "GitHub heading anchors (design/github-slugs.md)";
    LINK_CASE = "LNK005", "link-case-mismatch", Error, fixable: false,
        summary: "a link's path matches an existing file only when case is ignored",
        why: "It works on macOS and Windows but breaks on Linux and inside zip packages.",
        example: "[x](References/API.md) for references/api.md",
        fix: "Write the path with the file's exact case.",
        source: SKILLCHECK;
    SKILL_MD_MISSING = "STR001", "skill-md-missing", Error, fixable: false,
        summary: "the skill has no SKILL.md",
        why: "SKILL.md (exact case) is the entry point of every skill.",
        example: "my-skill/skill.md",
        fix: "Name the entry file SKILL.md.",
        source: SPEC;
    ORPHAN_FILE = "STR002", "orphan-file", Warning, fixable: false,
        summary: "a file under references/, assets/ or scripts/ is not reachable from SKILL.md",
        why: "The agent discovers files only through SKILL.md and what it links; an unreachable file is dead weight in every package.",
        example: "references/old-notes.md that no file links",
        fix: "Link it (a Markdown link, or its path in backticks, or a folder that contains it) from SKILL.md or a file reachable from it; or delete it.",
        source: BEST;
    DEEP_REFERENCE = "STR003", "deep-reference-chain", Warning, fixable: false,
        summary: "a Markdown file is reachable only through another reference, more than one level from SKILL.md",
        why: "Agents may only preview files that are referenced from references; keep references one level deep.",
        example: "SKILL.md -> references/a.md -> references/b.md",
        fix: "Link the file directly from SKILL.md.",
        source: BEST;
    UNREADABLE_FILE = "STR004", "unreadable-file", Error, fixable: false,
        summary: "a file cannot be read or is not a regular file (fifo, device, socket), too large, or a Markdown file is not UTF-8",
        why: "Such a file cannot be packaged or read by the agent.",
        example: "a named pipe in assets/",
        fix: "Remove the file, or replace it with a regular UTF-8 file.",
        source: SKILLCHECK;
    PACKAGE_INVALID = "STR005", "package-invalid", Error, fixable: false,
        summary: "a `.skill`/`.zip` package is corrupt or unsafe",
        why: "Packages with absolute paths, `..`, several top folders, duplicate names, wrong sizes or huge contents are rejected so that nothing unsafe is ever read or extracted.",
        example: "a zip with an entry `../../etc/cron.d/x`",
        fix: "Rebuild the package with `skillcheck pack`.",
        source: SKILLCHECK;
    CHECKLIST_UNCOVERED = "CHK001", "checklist-item-uncovered", Warning, fixable: false,
        summary: "a checklist item has no link to the place in the skill that teaches it",
        why: "Coverage proves that every item the agent must deliver is taught somewhere it can load. The link must resolve, and an anchor must point at a section with content.",
        example: "- [ ] Rate limiting shared by all workers",
        fix: "Link the item: `- [ ] Rate limiting -> [middleware](references/middleware.md#rate-limiting)`.",
        source: "design/checklist-coverage.md";
    CHECKLIST_REQUIRED = "CHK002", "checklist-required-missing", Error, fixable: false,
        summary: "an entry of `[checklist] require` matches no checklist item",
        why: "Required items stop a checklist from passing by dropping them.",
        example: "require = [\"Rate limiting\"] but no `- [ ]` item mentions it",
        fix: "Add the checklist item back, or change the requirement in skillcheck.toml.",
        source: "design/checklist-coverage.md";
    CODE_BLOCK_INVALID = "CB001", "code-block-invalid", Error, fixable: false,
        summary: "a fenced `toml`, `json` or `yaml` block does not parse",
        why: "Agents copy configuration examples verbatim; a broken example becomes a broken project.",
        example: "```json\n{\"a\": 1,}\n```",
        fix: "Fix the syntax at the reported line; mark pseudo-code with another language (`text`).",
        source: SKILLCHECK;
    CODE_FENCE_NO_LANGUAGE = "CB002", "code-fence-no-language", Warning, fixable: false,
        summary: "a fenced code block has no language",
        why: "The language tells the agent (and skillcheck) what the block is; `text` says it is plain text.",
        example: "```\npip install fastapi\n```",
        fix: "Add the language after the fence: ```bash, ```python, ```text.",
        source: SKILLCHECK;
    UNCLOSED_FENCE = "CB003", "code-fence-unclosed", Warning, fixable: false,
        summary: "a fenced code block is never closed",
        why: "Everything after it, to the end of the file, becomes code: links and headings vanish.",
        example: "```python\nprint(1)\n(end of file)",
        fix: "Close the block with the same fence (``` or ~~~) on its own line.",
        source: "CommonMark";
    UNWANTED_FILE = "HYG001", "unwanted-file", Warning, fixable: false,
        summary: "a file that must not ship (`.env`, `.DS_Store`, `__pycache__`, `*.pyc`, editor swap files)",
        why: "Such files leak local state or secrets and bloat packages.",
        example: "scripts/__pycache__/tool.cpython-311.pyc",
        fix: "Delete the file and ignore it in version control.",
        source: SKILLCHECK;
    SECRET = "SEC001", "secret", Error, fixable: false,
        summary: "something that looks like a live secret (API key, token, private key)",
        why: "A skill is shared and packaged; a key in it is a leaked key.",
        example: "ANTHROPIC_API_KEY=sk-ant-api03-<95 random characters>",
        fix: "Revoke the key, remove it, and use a placeholder such as `sk-ant-...` or an environment variable.",
        source: SKILLCHECK;
}

/// Finds a rule by code (`LNK003`) or name (`broken-anchor`), case-insensitively.
pub fn find(key: &str) -> Option<&'static Rule> {
    ALL.iter()
        .find(|r| r.code.eq_ignore_ascii_case(key) || r.name.eq_ignore_ascii_case(key))
}

fn group(code: &str) -> &'static str {
    match code.trim_end_matches(|c: char| c.is_ascii_digit()) {
        "FM" => "Frontmatter",
        "CAI" => "claude.ai upload (target claude-ai)",
        "SZ" => "Size",
        "LNK" => "Links and anchors",
        "STR" => "Structure",
        "CHK" => "Checklist coverage",
        "CB" => "Code blocks",
        "HYG" => "Hygiene",
        "SEC" => "Security",
        _ => "Other",
    }
}

/// `skillcheck rules` in plain text.
pub fn list_text() -> String {
    let mut out = String::new();
    let mut last = "";
    for rule in ALL {
        let g = group(rule.code);
        if g != last {
            let _ = writeln!(out, "{}{g}", if last.is_empty() { "" } else { "\n" });
            last = g;
        }
        let _ = writeln!(
            out,
            "  {:<7} {:<28} {:<8}{} {}",
            rule.code,
            rule.name,
            rule.severity.as_str(),
            if rule.fixable { "fix" } else { "   " },
            rule.summary
        );
    }
    out
}

/// `skillcheck rules --format markdown`: the table the README embeds.
pub fn list_markdown() -> String {
    let mut out = String::from(
        "| Code | Name | Default | Fix | What it checks | Source |\n|---|---|---|---|---|---|\n",
    );
    for rule in ALL {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} | {} | {} |",
            rule.code,
            rule.name,
            rule.severity.as_str(),
            if rule.fixable { "yes" } else { "" },
            rule.summary.replace('|', "\\|"),
            rule.source
        );
    }
    out
}

pub fn list_json() -> serde_json::Value {
    serde_json::Value::Array(
        ALL.iter()
            .map(|r| {
                serde_json::json!({
                    "code": r.code, "name": r.name, "severity": r.severity.as_str(),
                    "fixable": r.fixable, "summary": r.summary, "source": r.source,
                })
            })
            .collect(),
    )
}

/// `skillcheck explain CODE`.
pub fn explain(rule: &Rule) -> String {
    let indent = |s: &str| {
        s.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "{code} {name} ({sev} by default{fixable})\n\nWhat: {summary}.\n\nWhy: {why}\n\nExample:\n{example}\n\nFix: {fix}\n\nSource: {source}\n\nConfigure in skillcheck.toml:\n    [rules]\n    {code} = \"off\"   # or \"warning\", \"error\"\n",
        code = rule.code,
        name = rule.name,
        sev = rule.severity.as_str(),
        fixable = if rule.fixable {
            ", --fix can repair"
        } else {
            ""
        },
        summary = rule.summary,
        why = rule.why,
        example = indent(rule.example),
        fix = rule.fix,
        source = rule.source,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_and_names_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for r in ALL {
            assert!(seen.insert(r.code), "duplicate code {}", r.code);
            assert!(seen.insert(r.name), "duplicate name {}", r.name);
            assert!(
                r.name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{}",
                r.name
            );
            assert!(!r.summary.ends_with('.'), "{}", r.code);
        }
    }

    #[test]
    fn find_accepts_code_or_name() {
        assert_eq!(find("lnk003").map(|r| r.code), Some("LNK003"));
        assert_eq!(find("orphan-file").map(|r| r.code), Some("STR002"));
        assert!(find("NOPE1").is_none());
    }
}
