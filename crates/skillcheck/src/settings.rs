//! What a lint run is asked to check: the target, limits and which rules are on.
//!
//! Plain data shared by the config reader, the command line and the engine, so that none of
//! them needs the others.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::registry::{Rule, Severity};

/// The config file's name; found in the skill folder or any parent, never packed.
pub const CONFIG_FILE: &str = "skillcheck.toml";

/// Which client's rules apply.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The Agent Skills specification.
    #[default]
    Spec,
    /// Claude Code: also its documented extra frontmatter keys and argument placeholders.
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

/// Which rules run, in ruff's terms: `select` replaces the default set, `extend-select` adds
/// to it, `ignore` removes; entries are codes, names, code prefixes (`LNK`, `CHK00`) or `ALL`.
/// When a rule is both selected and ignored, the more specific entry wins (a tie ignores).
/// `severities` (`[rules]` in the config) sets a rule's severity, or turns it off, outright.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub select: Option<Vec<String>>,
    pub extend_select: Vec<String>,
    pub ignore: Vec<String>,
    pub severities: BTreeMap<&'static str, Option<Severity>>,
}

/// How specifically `spec` names `rule`: `None` when it does not, higher when narrower.
fn specificity(spec: &str, rule: &Rule) -> Option<usize> {
    if spec.eq_ignore_ascii_case("ALL") {
        Some(1)
    } else if spec.eq_ignore_ascii_case(rule.name) {
        Some(rule.code.len() + 1)
    } else if rule
        .code
        .get(..spec.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(spec))
    {
        Some(spec.len() + 1)
    } else {
        None
    }
}

impl Selection {
    /// The severity `rule` is reported with; `None` when it is off.
    pub fn severity(&self, rule: &Rule) -> Option<Severity> {
        if let Some(s) = self.severities.get(rule.code) {
            return *s;
        }
        let best = |specs: &[String]| specs.iter().filter_map(|s| specificity(s, rule)).max();
        let selected = match &self.select {
            Some(specs) => best(specs),
            None => rule.default_on.then_some(0),
        }
        .max(best(&self.extend_select));
        match (selected, best(&self.ignore)) {
            (Some(s), Some(i)) if s > i => Some(rule.severity),
            (Some(_), None) => Some(rule.severity),
            _ => None,
        }
    }

    /// Command-line flags over the config: `--select` replaces, the others add.
    pub fn overridden(
        mut self,
        select: Option<Vec<String>>,
        extend_select: &[String],
        ignore: &[String],
    ) -> Self {
        if select.is_some() {
            self.select = select;
        }
        self.extend_select.extend_from_slice(extend_select);
        self.ignore.extend_from_slice(ignore);
        self
    }
}

/// Whether `spec` names at least one of `rules` (for error messages on typos).
pub fn spec_is_known<'a>(spec: &str, mut rules: impl Iterator<Item = &'a Rule>) -> bool {
    rules.any(|r| specificity(spec, r).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: Rule = Rule {
        code: "LNK001",
        name: "broken-link",
        severity: Severity::Error,
        default_on: true,
        summary: "",
        why: "",
        example: "",
        fix: "",
        source: "",
        fixable: false,
    };
    const OPT_IN: Rule = Rule {
        code: "CHK001",
        name: "checklist-item-uncovered",
        default_on: false,
        severity: Severity::Warning,
        ..ON
    };

    fn sel(select: Option<&[&str]>, extend: &[&str], ignore: &[&str]) -> Selection {
        let own = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Selection {
            select: select.map(own),
            extend_select: own(extend),
            ignore: own(ignore),
            severities: BTreeMap::new(),
        }
    }

    #[test]
    fn defaults_select_extend_and_ignore() {
        let d = Selection::default();
        assert_eq!(d.severity(&ON), Some(Severity::Error));
        assert_eq!(d.severity(&OPT_IN), None);
        assert_eq!(
            sel(None, &["CHK"], &[]).severity(&OPT_IN),
            Some(Severity::Warning)
        );
        assert_eq!(sel(Some(&["CHK"]), &[], &[]).severity(&ON), None);
        assert_eq!(sel(None, &[], &["LNK"]).severity(&ON), None);
        // The narrower entry wins either way round.
        assert!(
            sel(Some(&["LNK001"]), &[], &["LNK"])
                .severity(&ON)
                .is_some()
        );
        assert!(
            sel(Some(&["LNK"]), &[], &["LNK001"])
                .severity(&ON)
                .is_none()
        );
        assert!(sel(Some(&["ALL"]), &[], &[]).severity(&OPT_IN).is_some());
        assert!(
            sel(None, &["broken-link"], &["LNK"])
                .severity(&ON)
                .is_some()
        );
    }

    #[test]
    fn explicit_severities_win() {
        let mut s = sel(None, &[], &["LNK"]);
        s.severities.insert("LNK001", Some(Severity::Warning));
        s.severities.insert("CHK001", Some(Severity::Error));
        assert_eq!(s.severity(&ON), Some(Severity::Warning));
        assert_eq!(s.severity(&OPT_IN), Some(Severity::Error));
    }

    #[test]
    fn command_line_replaces_select_and_adds_the_rest() {
        let s = sel(Some(&["LNK"]), &["CB"], &["STR"]).overridden(
            Some(vec!["FM".into()]),
            &["CHK".into()],
            &["SZ".into()],
        );
        assert_eq!(s.select, Some(vec!["FM".to_string()]));
        assert_eq!(s.extend_select, ["CB", "CHK"]);
        assert_eq!(s.ignore, ["STR", "SZ"]);
        assert!(spec_is_known("chk", [OPT_IN].iter()));
        assert!(!spec_is_known("XYZ", [OPT_IN].iter()));
    }
}
