//! The real-skill corpus (tests/corpus/, public skills, see its README): every finding of
//! `skillcheck lint` with default settings is pinned in `corpus.snap`, and each one has a
//! reviewed verdict in `verdicts.tsv` (`defect`, `accepted` or `rejected`). The issue-14 bars
//! hold: every error a true defect, at least 90% of warnings accepted, at most 2 findings
//! per skill on average.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

struct Finding {
    key: String,
    severity: String,
}

fn findings(corpus: &Path) -> (Vec<Finding>, usize) {
    let out = Command::new(env!("CARGO_BIN_EXE_skillcheck"))
        .args(["lint", "--format", "json", "."])
        .current_dir(corpus)
        .output()
        .expect("run skillcheck");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let skills = v["skills"].as_array().expect("skills");
    let mut found = Vec::new();
    for skill in skills {
        for d in skill["diagnostics"].as_array().expect("diagnostics") {
            found.push(Finding {
                key: format!(
                    "{}\t{}\t{}",
                    d["path"].as_str().unwrap_or_default(),
                    d["line"],
                    d["code"].as_str().unwrap_or_default()
                ),
                severity: d["severity"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    (found, skills.len())
}

/// `tool  severity  path  line  rule  verdict  note` rows of skillcheck, by path/line/rule.
fn verdicts(corpus: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(corpus.join("verdicts.tsv")).expect("verdicts.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols.len() >= 6 && cols[0] == "skillcheck").then(|| {
                (
                    format!("{}\t{}\t{}", cols[2], cols[3], cols[4]),
                    cols[5].to_string(),
                )
            })
        })
        .collect()
}

#[test]
fn real_skills_findings_are_pinned_and_reviewed() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let (found, skills) = findings(&corpus);
    assert!(skills >= 40, "the corpus holds {skills} skills");

    let listing: String = found
        .iter()
        .map(|f| format!("{}\t{}\n", f.key, f.severity))
        .collect();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(&corpus);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_description(
        "skillcheck lint --format json . in tests/corpus: path, line, code, severity",
    );
    settings.bind(|| insta::assert_snapshot!("corpus", listing));

    let verdicts = verdicts(&corpus);
    let unreviewed: Vec<&str> = found
        .iter()
        .filter(|f| !verdicts.contains_key(&f.key))
        .map(|f| f.key.as_str())
        .collect();
    assert!(
        unreviewed.is_empty(),
        "findings without a verdict in verdicts.tsv:\n{}",
        unreviewed.join("\n")
    );
    let verdict = |f: &Finding| verdicts[&f.key].as_str();
    let errors: Vec<&Finding> = found.iter().filter(|f| f.severity == "error").collect();
    let not_defects: Vec<&str> = errors
        .iter()
        .filter(|f| verdict(f) != "defect")
        .map(|f| f.key.as_str())
        .collect();
    assert!(
        not_defects.is_empty(),
        "errors that are not defects: {not_defects:?}"
    );
    let warnings: Vec<&Finding> = found.iter().filter(|f| f.severity == "warning").collect();
    let accepted = warnings.iter().filter(|f| verdict(f) != "rejected").count();
    assert!(
        accepted * 10 >= warnings.len() * 9,
        "{accepted} of {} warnings accepted, under 90%",
        warnings.len()
    );
    assert!(
        found.len() <= 2 * skills,
        "{} findings for {skills} skills, over 2 per skill",
        found.len()
    );
}
