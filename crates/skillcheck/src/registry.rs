//! Rule metadata: what a rule is, independent of the code that checks it.
//!
//! Each `rules/<family>.rs` declares its rules with [`declare_rules!`]; `rules::FAMILIES`
//! lists the families. Everything here works on that list and knows no rule by itself.

use std::fmt::Write as _;

use serde::Serialize;

/// How bad a finding is. A rule that is off never reaches a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    /// On unless deselected; the others run only when `select`/`extend-select` names them.
    pub default_on: bool,
    pub summary: &'static str,
    pub why: &'static str,
    pub example: &'static str,
    pub fix: &'static str,
    /// A public document the rule follows.
    pub source: &'static str,
    /// `--fix` can repair some occurrences with a certain edit.
    pub fixable: bool,
}

/// A family of rules: one `rules/<family>.rs`, one code prefix.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub prefix: &'static str,
    pub title: &'static str,
    /// The module that emits these rules (`rules/<module>.rs`).
    pub module: &'static str,
    pub rules: &'static [Rule],
}

// Public documents the rules cite.
pub const SPEC: &str = "Agent Skills specification (agentskills.io/specification)";
pub const CLAUDE_CODE: &str = "Claude Code skills documentation (code.claude.com/docs/en/skills)";
pub const SPEC_CC: &str =
    "Agent Skills specification; Claude Code skills documentation (code.claude.com/docs/en/skills)";
pub const CLAUDE_AI: &str =
    "Using Skills in Claude, upload requirements (support.claude.com, \"Using Skills in Claude\")";
pub const BEST: &str = "Skill authoring best practices (platform.claude.com/docs/en/agents-and-tools/agent-skills/best-practices)";
pub const GITHUB_ANCHORS: &str =
    "GitHub Docs, Basic writing and formatting syntax: section links (docs.github.com)";
pub const COMMONMARK: &str =
    "CommonMark specification 0.31, fenced code blocks (spec.commonmark.org)";
pub const GITHUB_TASKLISTS: &str =
    "GitHub Docs, Basic writing and formatting syntax: task lists (docs.github.com)";
pub const SNIPPETS: &str = "PyMdown Extensions, Snippets: named sections (facelessuser.github.io/pymdown-extensions/extensions/snippets)";
pub const FORMATS: &str = "TOML 1.0 (toml.io), RFC 8259 (JSON), YAML 1.2 (yaml.org/spec/1.2.2)";
pub const GITIGNORE: &str =
    "github/gitignore templates: Python, macOS, Windows, Vim, Emacs (github.com/github/gitignore)";
pub const SECRET_SCANNING: &str =
    "GitHub Docs, Supported secret scanning patterns (docs.github.com)";
pub const ZIP: &str = "PKWARE ZIP File Format Specification, APPNOTE.TXT 6.3.10 (pkware.com)";

/// Declares a family's rules as constants, and `RULES`, the family's list.
macro_rules! declare_rules {
    ($( $id:ident = $code:literal, $name:literal, $sev:ident, $on:ident, fixable: $fixable:literal,
        summary: $summary:literal, why: $why:literal, example: $example:literal,
        fix: $fix:literal, source: $source:expr; )*) => {
        $( pub const $id: $crate::registry::Rule = $crate::registry::Rule {
            code: $code, name: $name, severity: $crate::registry::Severity::$sev,
            default_on: $crate::registry::declare_rules!(@on $on), summary: $summary, why: $why,
            example: $example, fix: $fix, source: $source, fixable: $fixable,
        }; )*
        pub const RULES: &[$crate::registry::Rule] = &[$($id),*];
    };
    (@on on) => { true };
    (@on opt_in) => { false };
}
pub(crate) use declare_rules;

/// Every rule of `families`, in family order.
pub fn all(families: &'static [Family]) -> impl Iterator<Item = &'static Rule> {
    families.iter().flat_map(|f| f.rules.iter())
}

/// Finds a rule by code (`LNK003`) or name (`broken-anchor`), case-insensitively.
pub fn find(families: &'static [Family], key: &str) -> Option<&'static Rule> {
    all(families).find(|r| r.code.eq_ignore_ascii_case(key) || r.name.eq_ignore_ascii_case(key))
}

fn default_label(rule: &Rule) -> String {
    if rule.default_on {
        rule.severity.as_str().to_string()
    } else {
        format!("{} (opt-in)", rule.severity.as_str())
    }
}

/// `skillcheck rules` in plain text.
pub fn list_text(families: &'static [Family]) -> String {
    let mut out = String::new();
    for (i, family) in families.iter().enumerate() {
        let _ = writeln!(out, "{}{}", if i == 0 { "" } else { "\n" }, family.title);
        for rule in family.rules {
            let _ = writeln!(
                out,
                "  {:<7} {:<28} {:<18}{} {}",
                rule.code,
                rule.name,
                default_label(rule),
                if rule.fixable { "fix" } else { "   " },
                rule.summary
            );
        }
    }
    out
}

/// `skillcheck rules --format markdown`: the table the README embeds.
pub fn list_markdown(families: &'static [Family]) -> String {
    let mut out = String::from(
        "| Code | Name | Default | Fix | What it checks | Source |\n|---|---|---|---|---|---|\n",
    );
    for rule in all(families) {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} | {} | {} |",
            rule.code,
            rule.name,
            default_label(rule),
            if rule.fixable { "yes" } else { "" },
            rule.summary.replace('|', "\\|"),
            rule.source
        );
    }
    out
}

pub fn list_json(families: &'static [Family]) -> serde_json::Value {
    serde_json::Value::Array(
        all(families)
            .map(|r| {
                serde_json::json!({
                    "code": r.code, "name": r.name, "severity": r.severity.as_str(),
                    "default_on": r.default_on, "fixable": r.fixable, "summary": r.summary,
                    "source": r.source,
                })
            })
            .collect(),
    )
}

/// `skillcheck explain CODE`.
pub fn explain(rule: &Rule) -> String {
    explain_labelled(rule, default_label(rule))
}

/// [`explain`] for a finding reported at `severity` (the language server's hover): when the
/// config changed the rule's severity, the first line says so instead of the default alone.
pub fn explain_reported(rule: &Rule, severity: Severity) -> String {
    if severity == rule.severity {
        return explain(rule);
    }
    let label = format!(
        "{}, set in skillcheck.toml; default {}",
        severity.as_str(),
        default_label(rule)
    );
    explain_labelled(rule, label)
}

fn explain_labelled(rule: &Rule, label: String) -> String {
    let indent = |s: &str| {
        s.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let enable = if rule.default_on {
        format!(
            "On by default. Turn it off:\n    [lint]\n    ignore = [\"{}\"]",
            rule.code
        )
    } else {
        format!(
            "Off by default. Turn it on:\n    [lint]\n    extend-select = [\"{}\"]   # or --extend-select {}",
            rule.code, rule.code
        )
    };
    format!(
        "{code} {name} ({sev}{fixable})\n\nWhat: {summary}.\n\nWhy: {why}\n\nExample:\n{example}\n\nFix: {fix}\n\nSource: {source}\n\n{enable}\n\nChange its severity in skillcheck.toml:\n    [rules]\n    {code} = \"warning\"   # or \"error\", \"off\"\n",
        code = rule.code,
        name = rule.name,
        sev = label,
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
