//! `skillcheck init`, run as a user runs it: the file it writes is the one `lint` then reads,
//! and an existing config is never replaced.

use std::path::Path;
use std::process::{Command, Output};

fn skillcheck(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skillcheck"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run skillcheck")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SKILL: &str = "---\nname: demo\ndescription: Builds the weekly report. Use when asked for it.\n---\n\n# Demo\n\nText.\n";

#[test]
fn writes_the_defaults_that_lint_then_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let out = skillcheck(&["init"], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("wrote ./skillcheck.toml: every setting at its default"));
    let written = std::fs::read_to_string(tmp.path().join("skillcheck.toml")).unwrap();
    assert_eq!(written, skillcheck::init::default_config_text());

    // lint finds and accepts it: a typo in it would be an error naming the line.
    std::fs::create_dir(tmp.path().join("demo")).unwrap();
    std::fs::write(tmp.path().join("demo/SKILL.md"), SKILL).unwrap();
    let lint = skillcheck(&["lint", "demo"], tmp.path());
    assert_eq!(
        lint.status.code(),
        Some(0),
        "{}{}",
        text(&lint.stdout),
        text(&lint.stderr)
    );

    // And it is live: a changed limit changes what lint reports.
    let strict = written.replace("max_body_lines = 500", "max_body_lines = 1");
    std::fs::write(tmp.path().join("skillcheck.toml"), strict).unwrap();
    let lint = skillcheck(&["lint", "demo"], tmp.path());
    assert_eq!(lint.status.code(), Some(1));
    assert!(
        text(&lint.stdout).contains("SZ001"),
        "{}",
        text(&lint.stdout)
    );
}

#[test]
fn never_overwrites_a_config() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = "target = \"claude-code\"\n";
    std::fs::write(tmp.path().join("skillcheck.toml"), mine).unwrap();
    let out = skillcheck(&["init", "."], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(
            "skillcheck: error: ./skillcheck.toml already exists; init never overwrites"
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("skillcheck.toml")).unwrap(),
        mine
    );
    // No temporary file left behind either.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn a_missing_folder_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = skillcheck(&["init", "skills/nope"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("skills/nope"),
        "{}",
        text(&out.stderr)
    );
    assert!(!tmp.path().join("skills").exists());
}
