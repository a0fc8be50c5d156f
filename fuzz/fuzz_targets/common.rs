//! What every target does with a skill once it has one: lint it under every target, render
//! the report in every format, and plan the fixes, so that a panic anywhere downstream of
//! the parser is found too.

use std::time::Duration;

use skillcheck::config::Config;
use skillcheck::settings::Target;
use skillcheck::lint::{Options, lint_skill};
use skillcheck::render::{self, Format, Summary};
use skillcheck::source::{Origin, SkillFile, SkillSource};

// The package target reads its skill from zip bytes instead.
#[allow(dead_code)]
pub fn skill(files: &[(&str, &[u8])]) -> SkillSource {
    let mut files: Vec<SkillFile> = files
        .iter()
        .map(|(path, bytes)| SkillFile {
            path: (*path).to_string(),
            bytes: bytes.to_vec(),
            executable: false,
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    SkillSource {
        name: "fuzz-skill".to_string(),
        origin: Origin::Dir("fuzz-skill".into()),
        files,
        rejected: Vec::new(),
        bundles: Vec::new(),
    }
}

pub fn exercise(source: &SkillSource) {
    let config = Config::default();
    let mut reports = Vec::new();
    for target in [Target::Spec, Target::ClaudeCode, Target::ClaudeAi] {
        let options = Options {
            target: Some(target),
            select: Some(vec!["ALL".into()]),
            ..Options::default()
        };
        reports.push(lint_skill(source, &config, &options));
    }
    for report in &reports {
        let _ = skillcheck::fix::plan(source, report)
            .iter()
            .map(skillcheck::fix::unified_diff)
            .count();
    }
    let summary = Summary::of(&reports, Duration::ZERO);
    for format in [Format::Human, Format::Json, Format::Github, Format::Sarif] {
        let _ = render::render(format, &reports, &summary, true, false);
    }
}
