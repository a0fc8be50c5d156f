//! Which files of a skill go into its package, and why the others stay out.

use std::fmt;

use std::path::Path;

use crate::source::{
    ReadLimits, SkillFile, SkillSource, SourceError, default_excludes, glob_match,
};

/// Also in [`crate::source::default_excludes`], so it never ships itself.
pub const SKILLIGNORE: &str = ".skillignore";

/// Where an exclusion rule was written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum RuleOrigin {
    Default,
    Config,
    Skillignore { line: usize },
}

impl fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleOrigin::Default => f.write_str("built-in exclusion"),
            RuleOrigin::Config => f.write_str("skillcheck.toml [pack] exclude"),
            RuleOrigin::Skillignore { line } => write!(f, "{SKILLIGNORE}:{line}"),
        }
    }
}

/// The rule that left a path out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Exclusion {
    pub pattern: String,
    pub origin: RuleOrigin,
}

/// Gitignore-style rules in order; the last one that matches a path decides.
#[derive(Debug, Clone)]
pub struct ExcludeRules {
    rules: Vec<(bool, Exclusion)>,
}

impl ExcludeRules {
    /// The built-in rules, then the config's globs, then `.skillignore` lines.
    pub fn new(config_globs: &[String], skillignore: Option<&str>) -> Self {
        let mut rules = Vec::new();
        let mut push = |pattern: &str, origin: RuleOrigin| {
            let (negated, pattern) = match pattern.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, pattern),
            };
            let pattern = pattern.to_owned();
            rules.push((negated, Exclusion { pattern, origin }));
        };
        for pattern in default_excludes() {
            push(pattern, RuleOrigin::Default);
        }
        for pattern in config_globs {
            push(pattern, RuleOrigin::Config);
        }
        for (index, line) in skillignore.unwrap_or_default().lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                push(line, RuleOrigin::Skillignore { line: index + 1 });
            }
        }
        ExcludeRules { rules }
    }

    /// The rule that excludes `path` (a file path relative to the skill root), if any.
    pub fn exclusion(&self, path: &str) -> Option<&Exclusion> {
        let mut verdict = None;
        for (negated, rule) in &self.rules {
            if glob_match(&rule.pattern, path) {
                verdict = (!negated).then_some(rule);
            }
        }
        verdict
    }

    /// The rule that excludes a walked entry, as a file or as a folder (a symlink may be
    /// either, and a folder rule such as `.venv/` must stop the walk before it goes in).
    pub fn exclusion_of_entry(&self, path: &str) -> Option<&Exclusion> {
        self.exclusion(path)
            .or_else(|| self.exclusion(&format!("{path}/")))
    }
}

/// The files of a package-to-be and what was left out.
#[derive(Debug, Default)]
pub struct Selection {
    pub included: Vec<SkillFile>,
    /// Left-out files, and folders (shown with a trailing `/`) that were not walked, sorted,
    /// with the rule that left each out.
    pub excluded: Vec<(String, Exclusion)>,
}

impl Selection {
    pub fn total_bytes(&self) -> u64 {
        self.included.iter().map(|f| f.bytes.len() as u64).sum()
    }
}

/// Reads the skill at `dir` without ever reading what `rules` leave out. Paths that could
/// not be read stay in the source's `rejected` list: pack refuses while any remain.
pub fn read_selection(
    dir: &Path,
    limits: &ReadLimits,
    rules: &ExcludeRules,
) -> Result<(SkillSource, Selection), SourceError> {
    let mut excluded = Vec::new();
    let mut source = SkillSource::from_dir_pruned(dir, limits, &mut |path, is_folder| {
        let Some(rule) = rules.exclusion_of_entry(path) else {
            return false;
        };
        let shown = if is_folder {
            format!("{path}/")
        } else {
            path.to_owned()
        };
        excluded.push((shown, rule.clone()));
        true
    })?;
    excluded.sort_by(|a, b| a.0.cmp(&b.0));
    let selection = Selection {
        included: std::mem::take(&mut source.files),
        excluded,
    };
    Ok((source, selection))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_config_and_skillignore_rules_in_order() {
        let rules = ExcludeRules::new(
            &["*.log".to_owned()],
            Some("# drafts\n/drafts/\n!keep.log\n"),
        );
        let origin = |path: &str| rules.exclusion(path).map(|e| e.origin.clone());
        assert_eq!(
            origin("scripts/__pycache__/x.pyc"),
            Some(RuleOrigin::Default)
        );
        assert_eq!(origin("a/.DS_Store"), Some(RuleOrigin::Default));
        assert_eq!(origin("debug.log"), Some(RuleOrigin::Config));
        assert_eq!(
            origin("drafts/new.md"),
            Some(RuleOrigin::Skillignore { line: 2 })
        );
        assert_eq!(
            origin("references/drafts/new.md"),
            None,
            "anchored at the root"
        );
        assert_eq!(origin("keep.log"), None, "re-included by `!`");
        assert_eq!(origin(".env"), Some(RuleOrigin::Default));
        assert_eq!(origin(".env.example"), None);
        assert_eq!(origin("skillcheck.toml"), Some(RuleOrigin::Default));
        assert_eq!(origin("SKILL.md"), None);
        // The must-not-ship list lint reports is the one pack applies.
        assert_eq!(origin("a/.env.local"), Some(RuleOrigin::Default));
        assert_eq!(origin("scripts/.tox/py/x.txt"), Some(RuleOrigin::Default));
        assert_eq!(origin(".env.example"), None);
    }
}
