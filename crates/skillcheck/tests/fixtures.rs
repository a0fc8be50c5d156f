//! Fixture tests: every folder under tests/fixtures/ holds one or more skills, an optional
//! `args.txt` (extra `lint` arguments, one per line) and `expected.txt`, the exact output of
//! `skillcheck lint [args] .` run inside the folder, followed by `exit: N`.
//!
//! `UPDATE_EXPECT=1 cargo test --test fixtures` rewrites the expected files: review every
//! change by eye before committing it.

use std::path::Path;
use std::process::Command;

fn normalize(output: &str) -> String {
    let re = regex::Regex::new(r"in \d+\.\d+s").expect("regex");
    re.replace_all(output, "in X.XXs").into_owned()
}

fn run_fixture(dir: &Path) -> Result<(), String> {
    let mut args: Vec<String> = vec!["lint".into()];
    if let Ok(extra) = std::fs::read_to_string(dir.join("args.txt")) {
        args.extend(
            extra
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
        );
    }
    args.push(".".into());
    let out = Command::new(env!("CARGO_BIN_EXE_skillcheck"))
        .args(&args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .map_err(|e| e.to_string())?;
    let actual = normalize(&format!(
        "{}{}exit: {}\n",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code().unwrap_or(-1)
    ));
    let expected_path = dir.join("expected.txt");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expected_path, &actual).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_path).map_err(|e| {
        format!(
            "{}: {e} (run with UPDATE_EXPECT=1)",
            expected_path.display()
        )
    })?;
    if expected == actual {
        return Ok(());
    }
    let diff = similar::TextDiff::from_lines(&expected, &actual)
        .unified_diff()
        .header("expected", "actual")
        .to_string();
    Err(format!("{}:\n{diff}", dir.display()))
}

#[test]
fn fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 10, "expected a fixture per rule family");
    let failures: Vec<String> = dirs.iter().filter_map(|d| run_fixture(d).err()).collect();
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
