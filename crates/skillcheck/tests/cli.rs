//! Command-line behaviour: exit codes, formats, packages, fixes, rules and explain.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn skillcheck(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skillcheck"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run skillcheck")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const CLEAN_SKILL: &str =
    "---\nname: demo\ndescription: Use when testing the command line.\n---\n\n# Demo\n\nText.\n";

#[test]
fn exit_codes() {
    let clean = skillcheck(&["lint", "."], &fixture("kitchen-sink"));
    assert_eq!(code(&clean), 0, "{}", stdout(&clean));
    assert!(stdout(&clean).contains("1 skill, 8 files: 0 errors, 0 warnings"));

    let broken = skillcheck(&["lint", "."], &fixture("broken-skill"));
    assert_eq!(code(&broken), 1);

    let missing = skillcheck(&["lint", "does-not-exist"], &fixture("kitchen-sink"));
    assert_eq!(code(&missing), 2);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does-not-exist"));

    let no_skill = tempfile::tempdir().unwrap();
    assert_eq!(code(&skillcheck(&["lint", "."], no_skill.path())), 2);

    let bad_args = skillcheck(&["lint", "--format", "xml", "."], &fixture("kitchen-sink"));
    assert_eq!(code(&bad_args), 2);

    let bad_config = skillcheck(&["lint", "."], &fixture("config-error"));
    assert_eq!(code(&bad_config), 2);
    assert!(
        String::from_utf8_lossy(&bad_config.stderr)
            .contains("skillcheck.toml:3:1: unknown field `max_lines`")
    );
}

#[test]
fn deny_warnings_turns_warnings_into_failure() {
    let dir = fixture("structure");
    assert_eq!(code(&skillcheck(&["lint", "."], &dir)), 0);
    assert_eq!(
        code(&skillcheck(&["lint", "--deny-warnings", "."], &dir)),
        1
    );
}

#[test]
fn json_format() {
    let o = skillcheck(
        &["lint", "--format", "json", "--extend-select", "CHK", "."],
        &fixture("checklist"),
    );
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(v["summary"]["errors"], 2);
    assert_eq!(v["summary"]["checklist_required"], 3);
    assert_eq!(v["summary"]["checklist_required_found"], 2);
    let skill = &v["skills"][0];
    assert_eq!(skill["stats"]["checklist"]["SKILL.md"]["covered"], 3);
    assert_eq!(skill["stats"]["checklist"]["SKILL.md"]["total"], 7);
    let d = &skill["diagnostics"][1];
    assert_eq!(d["code"], "CHK001");
    assert_eq!(d["path"], "checklist/SKILL.md");
    assert_eq!(d["line"], 12);
    assert_eq!(d["col"], 3);
}

#[test]
fn github_format_escapes() {
    let o = skillcheck(
        &["lint", "--format", "github", "."],
        &fixture("broken-skill"),
    );
    assert_eq!(code(&o), 1);
    let out = stdout(&o);
    assert!(out.contains("::error file=pdf-tools/SKILL.md,line=10,col=6,title=LNK001 broken-link::link target `references/apis.md` does not exist in the skill%0Ahelp: did you mean `references/api.md`?"), "{out}");
    assert!(out.contains("::warning file=pdf-tools/.DS_Store,title=HYG001 unwanted-file::"));
    for line in out.lines().filter(|l| l.starts_with("::")) {
        let (_, message) = line.split_once("::").unwrap().1.split_once("::").unwrap();
        assert!(!message.contains('\n'));
    }
}

#[test]
fn sarif_format() {
    let o = skillcheck(
        &["lint", "--format", "sarif", "."],
        &fixture("broken-skill"),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid SARIF JSON");
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "skillcheck");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 12);
    let first_located = results.iter().find(|r| r["ruleId"] == "LNK001").unwrap();
    let loc = &first_located["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "pdf-tools/SKILL.md");
    assert_eq!(loc["region"]["startLine"], 10);
    let index = first_located["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(run["tool"]["driver"]["rules"][index]["id"], "LNK001");
}

#[test]
fn human_format_has_snippets_and_summary() {
    let o = skillcheck(&["lint", "--stats", "."], &fixture("broken-skill"));
    let out = stdout(&o);
    assert!(out.contains("error[LNK001]: link target `references/apis.md` does not exist in the skill\n  --> pdf-tools/SKILL.md:10:6\n"));
    assert!(out.contains("pdf-tools (pdf-tools): 7 files"));
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("1 skill, 7 files: 7 errors, 5 warnings in ")
    );
}

fn zip_skill(dir: &Path, top: &str, out: &Path) {
    let file = std::fs::File::create(out).unwrap();
    let mut w = zip::ZipWriter::new(file);
    let mut stack = vec![(dir.to_path_buf(), top.to_string())];
    while let Some((d, prefix)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
            if e.file_type().unwrap().is_dir() {
                stack.push((e.path(), name));
            } else {
                w.start_file(name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                w.write_all(&std::fs::read(e.path()).unwrap()).unwrap();
            }
        }
    }
    w.finish().unwrap();
}

#[test]
fn lints_packages_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("kitchen-sink.skill");
    zip_skill(&fixture("kitchen-sink/kitchen-sink"), "kitchen-sink", &pkg);
    let o = skillcheck(&["lint", "kitchen-sink.skill"], tmp.path());
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("1 skill, 8 files: 0 errors, 0 warnings"));
    // Nothing was extracted next to the package.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

    let broken = tmp.path().join("broken.zip");
    zip_skill(&fixture("broken-skill/pdf-tools"), "pdf-tools", &broken);
    let o = skillcheck(&["lint", "--format", "json", "broken.zip"], tmp.path());
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["skills"][0]["root"], "broken.zip!/pdf-tools");
    assert_eq!(v["summary"]["errors"], 7);
}

#[test]
fn select_extend_select_and_ignore_flags() {
    let dir = fixture("broken-skill");
    let codes = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["lint", "--format", "json"];
        all.extend_from_slice(args);
        all.push(".");
        let o = skillcheck(&all, &dir);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        let mut codes: Vec<String> = v["skills"][0]["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap().to_string())
            .collect();
        codes.dedup();
        codes
    };
    let default = codes(&[]);
    assert!(
        !default.iter().any(|c| c.starts_with("CHK") || c == "CB002"),
        "{default:?}"
    );
    let more = codes(&["--extend-select", "CHK,CB002"]);
    assert!(more.contains(&"CHK001".to_string()) && more.contains(&"CB002".to_string()));
    assert_eq!(codes(&["--select", "HYG"]), ["HYG001"]);
    let ignored = codes(&["--ignore", "LNK,STR002"]);
    assert!(
        !ignored
            .iter()
            .any(|c| c.starts_with("LNK") || c == "STR002"),
        "{ignored:?}"
    );
    let o = skillcheck(&["lint", "--select", "NOPE", "."], &dir);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("`NOPE` names no rule"),
        "{}",
        stderr(&o)
    );
}

/// `skillcheck diff a b | head`: the reader goes away; skillcheck must end quietly.
#[test]
fn closed_stdout_is_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, files) in [("old", 0), ("new", 1200)] {
        let skill = tmp.path().join(name).join("big");
        std::fs::create_dir_all(skill.join("assets")).unwrap();
        std::fs::write(
            skill.join("SKILL.md"),
            "---\nname: big\ndescription: Use when testing pipes.\n---\n\nFiles in `assets/`.\n",
        )
        .unwrap();
        // Far more lines than a pipe buffer holds, in `diff` and in `pack --list`.
        for i in 0..files {
            let name = format!("assets/a-long-file-name-so-that-few-files-fill-a-pipe-{i:05}.txt");
            std::fs::write(skill.join(name), "x\n").unwrap();
        }
    }
    for args in [
        vec!["diff", "old/big", "new/big"],
        vec!["pack", "--list", "new/big", "-o", "out/big.skill"],
        vec!["rules"],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skillcheck"))
            .args(&args)
            .current_dir(tmp.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
    }
}

#[test]
fn hostile_and_corrupt_packages_are_findings_not_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    let slip = tmp.path().join("slip.skill");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&slip).unwrap());
    w.start_file("demo/SKILL.md", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(CLEAN_SKILL.as_bytes()).unwrap();
    w.start_file(
        "demo/../../evil.sh",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    w.write_all(b"rm -rf /").unwrap();
    w.finish().unwrap();
    let o = skillcheck(&["lint", "slip.skill"], tmp.path());
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("error[STR005]: cannot read package: entry `demo/../../evil.sh`"),
        "{}",
        stdout(&o)
    );
    assert!(!tmp.path().join("evil.sh").exists());

    let bytes = std::fs::read(&slip).unwrap();
    std::fs::write(tmp.path().join("cut.skill"), &bytes[..bytes.len() / 2]).unwrap();
    let o = skillcheck(&["lint", "cut.skill"], tmp.path());
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("truncated or corrupt"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn rules_and_explain() {
    let here = fixture("kitchen-sink");
    let o = skillcheck(&["rules"], &here);
    assert_eq!(code(&o), 0);
    for rule in ["FM001", "LNK003", "STR002", "CHK001", "SEC001", "CAI006"] {
        assert!(stdout(&o).contains(rule), "{rule}");
    }
    let md = stdout(&skillcheck(&["rules", "--format", "markdown"], &here));
    assert!(md.starts_with("| Code | Name | Default | Fix | What it checks | Source |"));
    assert!(md.contains("| `LNK004` | `anchor-case-mismatch` | error | yes |"));
    let json: serde_json::Value =
        serde_json::from_slice(&skillcheck(&["rules", "--format", "json"], &here).stdout).unwrap();
    assert!(json.as_array().unwrap().len() >= 40);

    let o = skillcheck(&["explain", "broken-anchor"], &here);
    assert_eq!(code(&o), 0);
    let text = stdout(&o);
    for part in [
        "LNK003 broken-anchor",
        "What:",
        "Why:",
        "Example:",
        "Fix:",
        "Source:",
    ] {
        assert!(text.contains(part), "{part}");
    }
    let o = skillcheck(&["explain", "LNK03"], &here);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean LNK003?"));
}

#[test]
fn diff_shows_and_fix_applies_only_certain_fixes() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture("broken-skill"), tmp.path());
    let skill_md = tmp.path().join("pdf-tools/SKILL.md");
    let before = std::fs::read_to_string(&skill_md).unwrap();

    let o = skillcheck(&["lint", "--diff", "."], tmp.path());
    let out = stdout(&o);
    assert!(
        out.contains("--- a/pdf-tools/SKILL.md\n+++ b/pdf-tools/SKILL.md\n"),
        "{out}"
    );
    assert!(
        out.contains("-Read [the API](references/apis.md) and [setup](references/api.md#Setup).")
    );
    assert!(
        out.contains("+Read [the API](references/apis.md) and [setup](references/api.md#setup).")
    );
    assert_eq!(
        std::fs::read_to_string(&skill_md).unwrap(),
        before,
        "--diff writes nothing"
    );

    let o = skillcheck(&["lint", "--fix", "."], tmp.path());
    assert_eq!(code(&o), 1, "other errors remain");
    let after = std::fs::read_to_string(&skill_md).unwrap();
    assert_eq!(after, before.replace("api.md#Setup", "api.md#setup"));
    assert!(!stdout(&o).contains("LNK004"));
    assert!(stdout(&o).contains("fixed 1 problem(s) in 1 file(s)"));
}

#[test]
fn fix_adds_a_table_of_contents() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture("size"), tmp.path());
    let o = skillcheck(&["lint", "--fix", "."], tmp.path());
    assert!(!stdout(&o).contains("SZ002"), "{}", stdout(&o));
    let long = std::fs::read_to_string(tmp.path().join("size/references/long.md")).unwrap();
    assert!(long.starts_with(
        "# Long\n\nIntro.\n\n## Contents\n\n- [Part 1](#part-1)\n- [Part 2](#part-2)\n"
    ));
    assert!(long.contains("- [Part 11](#part-11)\n\n## Part 1\n"));
}

#[test]
fn secrets_are_reported_masked() {
    let tmp = tempfile::tempdir().unwrap();
    // Built at run time so that no live-looking key is ever committed.
    let key: String = format!(
        "ghp_{}",
        "Zk3q9VbX2mR7tLw8NpY4cJ1sH6dF0gKe5AuQ"
            .chars()
            .rev()
            .collect::<String>()
    );
    write(&tmp.path().join("demo/SKILL.md"), CLEAN_SKILL);
    write(
        &tmp.path().join("demo/scripts/deploy.sh"),
        &format!("export GITHUB_TOKEN={key}\n"),
    );
    write(
        &tmp.path().join("demo/SKILL.md"),
        &format!("{CLEAN_SKILL}\nRun `scripts/deploy.sh`.\n"),
    );
    let o = skillcheck(&["lint", "."], tmp.path());
    assert_eq!(code(&o), 1);
    let out = stdout(&o);
    assert!(
        out.contains("error[SEC001]: an API key or token that looks live: `ghp_********`"),
        "{out}"
    );
    assert!(out.contains("demo/scripts/deploy.sh:1:21"));
    assert!(!out.contains(&key[8..]), "the secret must be masked: {out}");
}

#[cfg(unix)]
#[test]
fn symlinks_and_special_files() {
    let tmp = tempfile::tempdir().unwrap();
    let skill = tmp.path().join("demo");
    write(
        &skill.join("SKILL.md"),
        &format!(
            "{CLEAN_SKILL}\nSee [inside](references/alias.md) and [outside](references/passwd.md).\n"
        ),
    );
    write(&skill.join("references/real.md"), "# Real\n\nText.\n");
    std::os::unix::fs::symlink("real.md", skill.join("references/alias.md")).unwrap();
    write(&tmp.path().join("secret.md"), "# outside\n");
    std::os::unix::fs::symlink("../../secret.md", skill.join("references/passwd.md")).unwrap();
    let fifo = skill.join("assets/pipe");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);

    let o = skillcheck(&["lint", "demo"], tmp.path());
    let out = stdout(&o);
    assert_eq!(code(&o), 1);
    assert!(out.contains("error[LNK002]: symlink points outside the skill (to ../../secret.md)\n--> demo/references/passwd.md"), "{out}");
    assert!(!out.contains("references/alias.md does not exist"));
    if made {
        assert!(
            out.contains("error[STR004]: not a regular file (fifo)\n--> demo/assets/pipe"),
            "{out}"
        );
    }
}

#[test]
fn lints_many_skills_in_parallel_in_input_order() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..40 {
        let name = format!("skill-{i:02}");
        write(
            &tmp.path().join(format!("tree/{name}/SKILL.md")),
            &CLEAN_SKILL.replace("name: demo", &format!("name: {name}")),
        );
    }
    write(
        &tmp.path().join("tree/skill-07/references/x.md"),
        "# orphan\n",
    );
    let o = skillcheck(&["lint", "--format", "json", "tree"], tmp.path());
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let skills = v["skills"].as_array().unwrap();
    assert_eq!(skills.len(), 40);
    assert_eq!(skills[7]["skill"], "skill-07");
    assert_eq!(skills[7]["warnings"], 1);
    assert!(
        skills
            .windows(2)
            .all(|w| w[0]["skill"].as_str() < w[1]["skill"].as_str())
    );
}
