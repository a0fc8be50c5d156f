//! Diagnostics, per-skill statistics and the lint report.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Serialize;

use crate::registry::{Rule, Severity};

/// One text replacement inside the file a diagnostic points at; only certain fixes get one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edit {
    /// Byte range in the file's current contents.
    pub range: Range<usize>,
    pub replacement: String,
}

/// The source line a diagnostic points into, for snippet rendering (secrets already masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceLine {
    pub text: String,
    /// Byte range inside `text` to underline.
    pub highlight: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    /// Path relative to the skill root, `/`-separated ("SKILL.md", "references/x.md").
    pub file: String,
    /// 1-based; 0 when the finding concerns the whole file.
    pub line: usize,
    /// 1-based, in characters; 0 when `line` is 0.
    pub col: usize,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(skip)]
    pub source_line: Option<SourceLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Edit>,
}

impl Diagnostic {
    pub fn new(rule: &Rule, file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            code: rule.code,
            name: rule.name,
            severity: rule.severity,
            file: file.into(),
            line: 0,
            col: 0,
            message: message.into(),
            help: None,
            source_line: None,
            fix: None,
        }
    }

    pub fn at(mut self, line: usize, col: usize) -> Self {
        self.line = line;
        self.col = col;
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub fn source_line(mut self, line: Option<SourceLine>) -> Self {
        self.source_line = line;
        self
    }

    pub fn fix(mut self, edit: Edit) -> Self {
        self.fix = Some(edit);
        self
    }
}

/// Checklist coverage of one Markdown file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub covered: usize,
    pub total: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SkillStats {
    pub files: usize,
    pub bytes: u64,
    /// Lines of the SKILL.md body (after the frontmatter).
    pub body_lines: usize,
    /// Estimated tokens (bytes / 4, rounded up) of the frontmatter and of the body.
    pub metadata_tokens: usize,
    pub body_tokens: usize,
    /// Per Markdown file with at least one checklist item.
    pub checklist: BTreeMap<String, Coverage>,
    pub checklist_total: Coverage,
    pub checklist_required: usize,
    pub checklist_required_found: usize,
}

/// The result of linting one skill.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The skill's name (its folder name).
    pub skill: String,
    /// How to show the skill root to the user: a folder path, or `pkg.skill!/name`.
    pub root: String,
    pub diagnostics: Vec<Diagnostic>,
    pub stats: SkillStats,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }

    /// The path to show for a file of this skill.
    pub fn display_path(&self, file: &str) -> String {
        if file.is_empty() {
            self.root.clone()
        } else if self.root.is_empty() || self.root == "." {
            file.to_string()
        } else {
            format!("{}/{}", self.root.trim_end_matches('/'), file)
        }
    }
}
