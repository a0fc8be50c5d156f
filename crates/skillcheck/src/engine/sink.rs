//! Where rules report: applies the rule selection and collects diagnostics and statistics.

use crate::diag::{Diagnostic, SkillStats};
use crate::registry::{Family, Rule};
use crate::settings::Selection;

pub struct Sink<'s> {
    selection: &'s Selection,
    /// The family whose checks run now; only its own rules may be emitted.
    family: Option<&'static Family>,
    diagnostics: Vec<Diagnostic>,
    pub stats: SkillStats,
}

impl<'s> Sink<'s> {
    pub fn new(selection: &'s Selection, stats: SkillStats) -> Self {
        Sink {
            selection,
            family: None,
            diagnostics: Vec::new(),
            stats,
        }
    }

    /// Starts the checks of `family`.
    pub fn enter(&mut self, family: &'static Family) {
        self.family = Some(family);
    }

    /// Whether `rule` is on, so that a costly check can be skipped when it is not.
    pub fn enabled(&self, rule: &Rule) -> bool {
        self.selection.severity(rule).is_some()
    }

    pub fn emit(&mut self, rule: &Rule, diagnostic: Diagnostic) {
        // Ties each code to the one family that declares it: a rule emitted from elsewhere
        // fails every test that reaches it.
        debug_assert!(
            self.family
                .is_none_or(|f| f.rules.iter().any(|r| r.code == rule.code)),
            "{} emitted outside its family",
            rule.code
        );
        if let Some(severity) = self.selection.severity(rule) {
            self.diagnostics.push(Diagnostic {
                severity,
                ..diagnostic
            });
        }
    }

    pub fn finish(self) -> (Vec<Diagnostic>, SkillStats) {
        (self.diagnostics, self.stats)
    }
}
