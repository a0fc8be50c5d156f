//! `lint_skill`: build the context once, run every rule family, sort the findings.

use crate::config::Config;
use crate::diag::{Report, SkillStats};
use crate::engine::{Context, LintSettings, Sink};
use crate::registry::Severity;
use crate::rules;
use crate::settings::{Selection, Target};
use crate::source::{Origin, SkillSource};

/// Per-run choices that are not part of a skill's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Overrides the config's target (`--target`).
    pub target: Option<Target>,
    /// `--select`: replaces the config's `select`.
    pub select: Option<Vec<String>>,
    /// `--extend-select` and `--ignore`: added to the config's.
    pub extend_select: Vec<String>,
    pub ignore: Vec<String>,
}

/// Lints one skill.
pub fn lint_skill(source: &SkillSource, config: &Config, options: &Options) -> Report {
    let target = options.target.unwrap_or(config.target);
    // A package says itself which folders it bundled; a folder is packed as the config says.
    let bundles = match source.origin {
        Origin::Package(_) => source.bundles.as_slice(),
        Origin::Dir(_) => config.pack.bundles_for(target),
    };
    let settings = LintSettings {
        target,
        bundles,
        limits: &config.limits,
        checklist_require: &config.checklist_require,
        config_path: config.path.as_deref(),
    };
    let selection: Selection = config.selection.clone().overridden(
        options.select.clone(),
        &options.extend_select,
        &options.ignore,
    );
    let ctx = Context::new(source, settings);
    let mut sink = Sink::new(
        &selection,
        SkillStats {
            files: source.files.len(),
            bytes: source.total_bytes(),
            ..SkillStats::default()
        },
    );
    rules::run(&ctx, &mut sink);
    let (mut diagnostics, stats) = sink.finish();
    diagnostics.sort_by(|a, b| {
        (a.file.as_str(), a.line, a.col, a.code).cmp(&(b.file.as_str(), b.line, b.col, b.code))
    });
    diagnostics.dedup();
    Report {
        skill: source.name.clone(),
        root: match &source.origin {
            Origin::Dir(p) => {
                let shown = p.display().to_string();
                shown
                    .strip_prefix("./")
                    .map(str::to_string)
                    .unwrap_or(shown)
            }
            Origin::Package(p) => format!("{}!/{}", p.display(), source.name),
        },
        diagnostics,
        stats,
    }
}

/// Errors and warnings of a set of reports.
pub fn totals(reports: &[Report]) -> (usize, usize) {
    reports.iter().fold((0, 0), |(e, w), r| {
        let count = |s| r.diagnostics.iter().filter(|d| d.severity == s).count();
        (e + count(Severity::Error), w + count(Severity::Warning))
    })
}
