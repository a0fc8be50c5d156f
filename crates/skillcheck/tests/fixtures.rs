//! Fixture snapshots: every folder under tests/fixtures/<case>/ holds one or more skills, an
//! optional `args.txt` (extra `lint` arguments, one per line), an optional `paths.txt` (what
//! to lint instead of `.`, one per line) and `lint.snap`, the insta snapshot of
//! `skillcheck lint [args] [paths]` run inside the folder, followed by `exit: N`.
//!
//! When the lint offers fixes, the case also holds `fixed/<skill path>.fixed`: each file as
//! `lint --fix` leaves it. The fix runs on a copy, twice: the second run must change nothing.
//!
//! Review changes with `cargo insta review` (or `INSTA_UPDATE=always`); `UPDATE_EXPECT=1`
//! rewrites the `.fixed` files. Read every change before committing it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn normalize(output: &str) -> String {
    let re = regex::Regex::new(r"in \d+\.\d+s").expect("regex");
    re.replace_all(output, "in X.XXs").into_owned()
}

fn args_of(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("args.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// `paths.txt` names what to lint (packages, say) instead of the folder itself.
fn paths_of(dir: &Path) -> Vec<String> {
    let listed: Vec<String> = std::fs::read_to_string(dir.join("paths.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    if listed.is_empty() {
        vec![".".into()]
    } else {
        listed
    }
}

fn lint(dir: &Path, extra: &[&str]) -> (String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_skillcheck"))
        .arg("lint")
        .args(args_of(dir))
        .args(extra)
        .args(paths_of(dir))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run skillcheck");
    let text = normalize(&format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ));
    (text, out.status.code().unwrap_or(-1))
}

/// Every regular file under `dir`, by path relative to it, skipping snapshot material.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read fixture")
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let rel = path.strip_prefix(root).expect("prefix").to_string_lossy();
            if rel == "fixed" || rel.ends_with(".snap") || rel.ends_with(".snap.new") {
                continue;
            }
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                walk(root, &path, out);
            } else if kind.is_file() {
                out.insert(rel.into_owned(), std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in files(from) {
        let target = to.join(&rel);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::write(&target, bytes).expect("write");
    }
}

/// Runs `lint --fix` on a copy; compares the changed files with `fixed/*.fixed`.
fn check_fixes(dir: &Path) -> Result<(), String> {
    let before = files(dir);
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let copy = scratch.path().join(dir.file_name().expect("name"));
    copy_tree(dir, &copy);
    lint(&copy, &["--fix"]);
    let after = files(&copy);
    let (again, _) = lint(&copy, &["--fix"]);
    if files(&copy) != after {
        return Err(format!(
            "{}: a second `lint --fix` changed files again:\n{again}",
            dir.display()
        ));
    }
    let fixed_dir = dir.join("fixed");
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if fixed_dir.is_dir() {
        for (rel, bytes) in files(&fixed_dir) {
            expected.insert(rel.trim_end_matches(".fixed").to_string(), bytes);
        }
    }
    let actual: BTreeMap<String, Vec<u8>> = after
        .into_iter()
        .filter(|(rel, bytes)| before.get(rel) != Some(bytes))
        .collect();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        let _ = std::fs::remove_dir_all(&fixed_dir);
        for (rel, bytes) in &actual {
            let target: PathBuf = fixed_dir.join(format!("{rel}.fixed"));
            std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
            std::fs::write(&target, bytes).expect("write");
        }
        return Ok(());
    }
    if expected == actual {
        return Ok(());
    }
    let mut report = format!(
        "{}: `lint --fix` result differs from fixed/:\n",
        dir.display()
    );
    for rel in expected.keys().chain(actual.keys()) {
        let (e, a) = (expected.get(rel), actual.get(rel));
        if e != a {
            let text = |b: Option<&Vec<u8>>| {
                b.map_or_else(
                    || "(unchanged)\n".into(),
                    |b| String::from_utf8_lossy(b).into_owned(),
                )
            };
            let (old, new) = (text(e), text(a));
            let diff = similar::TextDiff::from_lines(old.as_str(), new.as_str())
                .unified_diff()
                .header(&format!("{rel}.fixed"), &format!("{rel} after --fix"))
                .to_string();
            report.push_str(&diff);
        }
    }
    Err(report)
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn fixtures() {
    let dirs = cases();
    assert!(dirs.len() >= 10, "expected a fixture per rule family");
    let mut failures = Vec::new();
    for dir in &dirs {
        let (text, code) = lint(dir, &[]);
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(dir);
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        settings.set_description(format!(
            "skillcheck lint {} {} in tests/fixtures/{name}",
            args_of(dir).join(" "),
            paths_of(dir).join(" ")
        ));
        settings.bind(|| insta::assert_snapshot!("lint", format!("{text}exit: {code}\n")));
        if let Err(e) = check_fixes(dir) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
