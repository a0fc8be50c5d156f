//! Properties that must hold for any input: lint and the package reader never panic, whatever
//! the Markdown, frontmatter or bytes; diagnostics point inside the file they name; a package
//! that `pack` builds reads back to the same files. The fuzz targets in `fuzz/` explore the
//! same entry points for longer; these run in CI.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use skillcheck::config::Config;
use skillcheck::lint::{Options, lint_skill};
use skillcheck::pack::archive::{build_archive, entry_timestamp};
use skillcheck::parse::markdown::{LineIndex, parse};
use skillcheck::render::{self, Format, Summary};
use skillcheck::settings::Target;
use skillcheck::source::read_package;
use skillcheck::source::{Origin, ReadLimits, SkillFile, SkillSource};

/// Pieces that Markdown and frontmatter parsers trip over, mixed with arbitrary text.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        Just("---".to_string()),
        Just("```".to_string()),
        Just("~~~yaml".to_string()),
        Just("```json\n{\"a\": [1,".to_string()),
        Just("```toml\na = \n".to_string()),
        "#{1,7} [A-Za-z (){}#-]{0,20}",
        "\\[[a-z ]{0,8}\\]\\((references/)?[a-z./#-]{0,20}\\)",
        "\\[[a-z]{0,4}\\]: [a-z./#]{0,12}",
        "- \\[[ xX]\\] [a-z ]{0,10}(-> \\[a\\]\\(#[a-z-]{0,8}\\))?",
        "<a (id|name)=\"[a-z-]{0,8}\"></a>",
        "`(scripts|assets|references)/[a-z./]{0,12}`",
        "(name|description|metadata|license|compatibility|allowed-tools): [ -~]{0,30}",
        "  [a-z]{1,6}: [ -~]{0,10}",
        "[\u{feff}\u{200b}\r\t|>*&!%@ ]{1,4}",
        Just("ghp_Zk3q9VbX2mR7tLw8NpY4cJ1sH6dF0gKe5AuQ".to_string()),
        Just("-----BEGIN PRIVATE KEY-----\nMII".to_string()),
    ]
}

fn document() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec(fragment(), 0..40),
        any::<bool>(),
    )
        .prop_map(|(frontmatter, parts, crlf)| {
            let mut text = if frontmatter {
                "---\n".to_string()
            } else {
                String::new()
            };
            text.push_str(&parts.join("\n"));
            if crlf {
                text.replace('\n', "\r\n")
            } else {
                text
            }
        })
}

fn skill(files: Vec<(String, Vec<u8>)>) -> SkillSource {
    let mut files: Vec<SkillFile> = files
        .into_iter()
        .map(|(path, bytes)| SkillFile {
            path,
            bytes,
            executable: false,
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    SkillSource {
        name: "prop-skill".to_string(),
        origin: Origin::Dir("prop-skill".into()),
        files,
        rejected: Vec::new(),
        bundles: Vec::new(),
    }
}

/// Lints under every target and renders every format; returns the spec-target reports.
fn lint_everything(source: &SkillSource) -> Vec<skillcheck::Report> {
    let config = Config::default();
    let reports: Vec<_> = [Target::Spec, Target::ClaudeCode, Target::ClaudeAi]
        .into_iter()
        .map(|target| {
            lint_skill(
                source,
                &config,
                &Options {
                    target: Some(target),
                    select: Some(vec!["ALL".into()]),
                    ..Options::default()
                },
            )
        })
        .collect();
    let summary = Summary::of(&reports, Duration::ZERO);
    for format in [Format::Human, Format::Json, Format::Github, Format::Sarif] {
        render::render(format, &reports, &summary, true, false);
    }
    for report in &reports {
        for fix in skillcheck::fix::plan(source, report) {
            skillcheck::fix::unified_diff(&fix);
        }
    }
    reports
}

fn rel_path() -> impl Strategy<Value = String> {
    "(references|assets|scripts)/[a-z]{1,6}\\.(md|py|txt)"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn lint_never_panics_on_any_skill_md(text in document()) {
        let source = skill(vec![("SKILL.md".to_string(), text.into_bytes())]);
        lint_everything(&source);
    }

    #[test]
    fn lint_never_panics_across_files(
        skill_md in document(),
        others in prop::collection::vec((rel_path(), document()), 0..4),
        binary in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut files = vec![("SKILL.md".to_string(), skill_md.into_bytes())];
        files.extend(others.into_iter().map(|(p, t)| (p, t.into_bytes())));
        files.push(("assets/blob.md".to_string(), binary));
        lint_everything(&skill(files));
    }

    #[test]
    fn diagnostics_point_inside_their_file(text in document()) {
        let source = skill(vec![("SKILL.md".to_string(), text.clone().into_bytes())]);
        let lines = text.split('\n').count();
        for report in lint_everything(&source) {
            for d in &report.diagnostics {
                if d.file == "SKILL.md" {
                    prop_assert!(d.line <= lines, "{} line {} of {}", d.code, d.line, lines);
                }
            }
        }
    }

    #[test]
    fn markdown_positions_are_in_bounds(text in document()) {
        let index = LineIndex::new(&text);
        let doc = parse(&text, &index);
        let lines = index.line_count();
        for link in &doc.links {
            prop_assert!(link.range.end <= text.len());
            prop_assert!(link.line >= 1 && link.line <= lines.max(1));
        }
        for heading in &doc.headings {
            prop_assert!(heading.line >= 1 && heading.line <= lines.max(1));
        }
    }

    #[test]
    fn package_reader_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(source) = read_package(&bytes, Path::new("any.skill"), &ReadLimits::default()) {
            lint_everything(&source);
        }
    }

    #[test]
    fn packages_read_back_and_survive_corruption(
        files in prop::collection::btree_map(rel_path(), prop::collection::vec(any::<u8>(), 0..200), 0..5),
        skill_md in document(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        truncate in any::<prop::sample::Index>(),
    ) {
        let mut all: Vec<(String, Vec<u8>)> = files.into_iter().collect();
        all.push(("SKILL.md".to_string(), skill_md.into_bytes()));
        let source = skill(all);
        let stamp = entry_timestamp(None).expect("default timestamp");
        let bytes = build_archive("prop-skill", &source.files, stamp).expect("archive");
        let read = read_package(&bytes, Path::new("prop-skill.skill"), &ReadLimits::default())
            .expect("pack's own output must read back");
        prop_assert_eq!(&read.files, &source.files);

        let mut corrupt = bytes.clone();
        for (at, value) in cuts {
            let i = at.index(corrupt.len());
            corrupt[i] ^= value | 1;
        }
        let _ = read_package(&corrupt, Path::new("x.skill"), &ReadLimits::default())
            .map(|s| lint_everything(&s));
        let short = &bytes[..truncate.index(bytes.len())];
        let _ = read_package(short, Path::new("x.skill"), &ReadLimits::default());
    }
}
