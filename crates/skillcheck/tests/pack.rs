//! `pack`, `pack --check`, `pack --list` and `diff`: reproducible bytes, exclusions,
//! symlinks, atomic writes, stale packages and hostile archives.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use zip::write::SimpleFileOptions;

fn skillcheck(args: &[&str], dir: &Path) -> Output {
    skillcheck_env(args, dir, &[])
}

fn skillcheck_env(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skillcheck"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("SOURCE_DATE_EPOCH")
        .envs(env.iter().copied())
        .output()
        .expect("run skillcheck")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn write(path: &Path, contents: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// A small clean skill named `demo` under `root/demo`.
fn demo_skill(root: &Path) -> PathBuf {
    let dir = root.join("demo");
    write(
        &dir.join("SKILL.md"),
        "---\nname: demo\ndescription: Packs things. Use when testing pack.\n---\n\n# Demo\n\n\
         Read [the guide](references/guide.md) and run `scripts/run.sh`.\n",
    );
    write(&dir.join("references/guide.md"), "# Guide\n\nSteps.\n");
    write(&dir.join("scripts/run.sh"), "#!/bin/sh\necho run\n");
    fs::set_permissions(
        dir.join("scripts/run.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    dir
}

fn entries(package: &Path) -> Vec<(String, u32)> {
    let bytes = fs::read(package).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let file = archive.by_index(i).unwrap();
            (file.name().unwrap().into_owned(), file.unix_mode().unwrap())
        })
        .collect()
}

fn set_tree_mtime(dir: &Path, seconds: u64) {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            set_tree_mtime(&path, seconds);
        } else {
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(time)
                .unwrap();
        }
    }
}

#[test]
fn packs_are_byte_identical_whatever_the_mtimes_modes_and_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let skill = demo_skill(tmp.path());
    let first = skillcheck(&["pack", "demo", "-o", "one.skill"], tmp.path());
    assert_eq!(code(&first), 0, "{}", text(&first));
    let out = text(&first);
    assert!(out.contains("packed demo -> one.skill"), "{out}");
    assert!(out.contains("3 entries"), "{out}");

    // Another machine: other mtimes, group-writable files (umask 002), a fresh copy.
    set_tree_mtime(&skill, 2_000_000_000);
    for file in ["SKILL.md", "references/guide.md"] {
        fs::set_permissions(skill.join(file), fs::Permissions::from_mode(0o664)).unwrap();
    }
    fs::set_permissions(
        skill.join("scripts/run.sh"),
        fs::Permissions::from_mode(0o775),
    )
    .unwrap();
    let second = skillcheck(&["pack", "demo", "-o", "two.skill"], tmp.path());
    assert_eq!(code(&second), 0, "{}", text(&second));
    let one = fs::read(tmp.path().join("one.skill")).unwrap();
    let two = fs::read(tmp.path().join("two.skill")).unwrap();
    assert_eq!(one, two, "packs of the same tree differ");

    assert_eq!(
        entries(&tmp.path().join("one.skill")),
        [
            ("demo/SKILL.md".to_owned(), 0o100_644),
            ("demo/references/guide.md".to_owned(), 0o100_644),
            ("demo/scripts/run.sh".to_owned(), 0o100_755),
        ]
    );
    let sha = skillcheck::pack::sha256_hex(&one);
    assert!(out.contains(&format!("sha256 {sha}")), "{out}");
}

#[test]
fn source_date_epoch_sets_the_timestamp_and_bad_values_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    demo_skill(tmp.path());
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let o = skillcheck_env(&["pack", "demo", "-o", "a.skill"], tmp.path(), &epoch);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let plain = skillcheck(&["pack", "demo", "-o", "b.skill"], tmp.path());
    assert_eq!(code(&plain), 0);
    assert_ne!(
        fs::read(tmp.path().join("a.skill")).unwrap(),
        fs::read(tmp.path().join("b.skill")).unwrap()
    );
    let bad = [("SOURCE_DATE_EPOCH", "yesterday")];
    let o = skillcheck_env(&["pack", "demo", "-o", "c.skill"], tmp.path(), &bad);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o).contains("SOURCE_DATE_EPOCH=`yesterday`"),
        "{}",
        text(&o)
    );
    assert!(!tmp.path().join("c.skill").exists());
}

#[test]
fn default_and_configured_exclusions_with_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    let skill = demo_skill(tmp.path());
    for junk in [
        ".git/HEAD",
        "scripts/__pycache__/run.cpython-311.pyc",
        "scripts/old.pyc",
        ".DS_Store",
        "node_modules/x/index.js",
        ".venv/bin/python",
        "references/.guide.md.swp",
        ".env",
        "drafts/idea.md",
        "notes.log",
    ] {
        write(&skill.join(junk), "junk\n");
    }
    write(
        &skill.join("skillcheck.toml"),
        "[pack]\nexclude = [\"*.log\"]\n",
    );
    // A virtualenv symlinked from elsewhere is left out without being followed.
    symlink(tmp.path(), skill.join("scripts/.venv")).unwrap();
    write(
        &skill.join(".skillignore"),
        "# work in progress\n/drafts/\n",
    );

    let list = skillcheck(&["pack", "demo", "--list"], tmp.path());
    assert_eq!(code(&list), 0, "{}", text(&list));
    let out = text(&list);
    for line in [
        "include SKILL.md",
        "exclude .DS_Store (built-in exclusion: `.DS_Store`)",
        "exclude .env (built-in exclusion: `.env`)",
        "exclude .skillignore (built-in exclusion: `.skillignore`)",
        "exclude .venv/ (built-in exclusion: `.venv/`)",
        "exclude drafts/ (.skillignore:2: `/drafts/`)",
        "exclude node_modules/ (built-in exclusion: `node_modules/`)",
        "exclude notes.log (skillcheck.toml [pack] exclude: `*.log`)",
        "exclude references/.guide.md.swp (built-in exclusion: `*.swp`)",
        "exclude scripts/.venv (built-in exclusion: `.venv/`)",
        "exclude scripts/__pycache__/ (built-in exclusion: `__pycache__/`)",
        "exclude scripts/old.pyc (built-in exclusion: `*.pyc`)",
        "exclude skillcheck.toml (built-in exclusion: `skillcheck.toml`)",
        "3 files, ",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
    assert!(!out.contains(".git/HEAD"), ".git is never read:\n{out}");
    assert!(
        !tmp.path().join("dist").exists(),
        "--list must not write anything"
    );

    let packed = skillcheck(&["pack", "demo"], tmp.path());
    assert_eq!(code(&packed), 0, "{}", text(&packed));
    let names: Vec<String> = entries(&tmp.path().join("dist/demo.skill"))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        [
            "demo/SKILL.md",
            "demo/references/guide.md",
            "demo/scripts/run.sh"
        ]
    );
}

#[test]
fn symlinks_inside_are_packed_as_files_outside_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let skill = demo_skill(tmp.path());
    symlink("guide.md", skill.join("references/alias.md")).unwrap();
    write(
        &skill.join("SKILL.md"),
        "---\nname: demo\ndescription: Packs things. Use when testing pack.\n---\n\n# Demo\n\n\
         Read [the guide](references/guide.md), [the alias](references/alias.md), run `scripts/run.sh`.\n",
    );
    let o = skillcheck(&["pack", "demo", "-o", "in.skill"], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    let bytes = fs::read(tmp.path().join("in.skill")).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut alias = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("demo/references/alias.md").unwrap(),
        &mut alias,
    )
    .unwrap();
    assert_eq!(alias, "# Guide\n\nSteps.\n");

    write(&tmp.path().join("secret.txt"), "outside\n");
    symlink("../../secret.txt", skill.join("references/leak.md")).unwrap();
    let o = skillcheck(&["pack", "demo", "-o", "out.skill"], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("demo/references/leak.md"), "{out}");
    assert!(out.contains("symlink points outside the skill"), "{out}");
    assert!(!tmp.path().join("out.skill").exists());
}

#[test]
fn lint_errors_block_the_pack_and_keep_the_previous_package() {
    let tmp = tempfile::tempdir().unwrap();
    let skill = demo_skill(tmp.path());
    let o = skillcheck(&["pack", "demo"], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    let before = fs::read(tmp.path().join("dist/demo.skill")).unwrap();

    // The link target is excluded, so the package would ship a broken link.
    write(&skill.join(".skillignore"), "references/\n");
    let o = skillcheck(&["pack", "demo"], tmp.path());
    assert_eq!(code(&o), 1, "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("references/guide.md"), "{out}");
    assert!(out.contains("refusing to pack demo"), "{out}");
    assert_eq!(
        fs::read(tmp.path().join("dist/demo.skill")).unwrap(),
        before
    );
    let leftovers: Vec<_> = fs::read_dir(tmp.path().join("dist"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["demo.skill"], "no temporary file may remain");
}

#[test]
fn warnings_block_only_with_deny_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let skill = demo_skill(tmp.path());
    write(&skill.join("references/orphan.md"), "# Orphan\n");
    let o = skillcheck(&["pack", "demo"], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("orphan.md"), "{}", text(&o));
    let o = skillcheck(
        &["pack", "demo", "--deny-warnings", "-o", "x.skill"],
        tmp.path(),
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(!tmp.path().join("x.skill").exists());
}

#[test]
fn check_passes_then_fails_after_an_edit_with_a_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let skill = demo_skill(tmp.path());
    assert_eq!(code(&skillcheck(&["pack", "demo"], tmp.path())), 0);
    let o = skillcheck(&["pack", "--check", "demo"], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("dist/demo.skill is up to date"),
        "{}",
        text(&o)
    );

    set_tree_mtime(&skill, 1_900_000_000);
    let o = skillcheck(&["pack", "--check", "demo"], tmp.path());
    assert_eq!(code(&o), 0, "touching files changes nothing: {}", text(&o));

    write(
        &skill.join("references/guide.md"),
        "# Guide\n\nNew steps.\n",
    );
    let o = skillcheck(&["pack", "--check", "demo"], tmp.path());
    assert_eq!(code(&o), 1, "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("M references/guide.md"), "{out}");
    assert!(out.contains("-Steps.\n+New steps.\n"), "{out}");

    let o = skillcheck(&["pack", "--check", "demo", "--format", "json"], tmp.path());
    assert_eq!(code(&o), 1);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["up_to_date"], false);
    assert_eq!(json["changes"][0]["change"], "modified");
    assert_eq!(json["changes"][0]["path"], "references/guide.md");

    let o = skillcheck(
        &["pack", "--check", "demo", "-o", "missing.skill"],
        tmp.path(),
    );
    assert_eq!(code(&o), 1);
    assert!(text(&o).contains("missing.skill differs"), "{}", text(&o));
}

#[test]
fn json_output_names_path_entries_bytes_and_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    demo_skill(tmp.path());
    let o = skillcheck(&["pack", "demo", "--zip", "--format", "json"], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["path"], "dist/demo.zip");
    assert_eq!(json["entries"], 3);
    let bytes = fs::read(tmp.path().join("dist/demo.zip")).unwrap();
    assert_eq!(json["bytes"], bytes.len());
    assert_eq!(json["sha256"], skillcheck::pack::sha256_hex(&bytes));
}

#[test]
fn refuses_to_write_the_package_inside_the_skill() {
    let tmp = tempfile::tempdir().unwrap();
    demo_skill(tmp.path());
    let o = skillcheck(&["pack", "demo", "-o", "demo/dist/demo.skill"], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("inside the skill"), "{}", text(&o));
}

#[test]
fn claude_ai_target_enforces_upload_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let skill = demo_skill(tmp.path());
    let mut links = String::new();
    for i in 0..200 {
        write(&skill.join(format!("references/r{i}.md")), "# R\n");
        links.push_str(&format!("- [r{i}](references/r{i}.md)\n"));
    }
    write(
        &skill.join("SKILL.md"),
        &format!(
            "---\nname: demo\ndescription: Packs things. Use when testing pack.\n---\n\n# Demo\n\n\
             Read [the guide](references/guide.md), run `scripts/run.sh`.\n\n{links}"
        ),
    );
    let spec = skillcheck(&["pack", "demo", "-o", "spec.skill"], tmp.path());
    assert_eq!(code(&spec), 0, "{}", text(&spec));
    let o = skillcheck(
        &["pack", "demo", "--target", "claude-ai", "-o", "ai.skill"],
        tmp.path(),
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("203"), "{}", text(&o));
    assert!(!tmp.path().join("ai.skill").exists());
}

#[test]
fn the_package_opens_with_python_and_unzip_and_its_contents_lint_clean() {
    let tmp = tempfile::tempdir().unwrap();
    demo_skill(tmp.path());
    assert_eq!(code(&skillcheck(&["pack", "demo"], tmp.path())), 0);
    let unzip = Command::new("unzip")
        .args(["-t", "dist/demo.skill"])
        .current_dir(tmp.path())
        .output()
        .expect("unzip must be installed (apt-get install unzip)");
    assert!(unzip.status.success(), "{}", text(&unzip));
    let python = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; \
             z.extractall(sys.argv[2]); print(sorted(z.namelist()))",
            "dist/demo.skill",
            "unpacked",
        ])
        .current_dir(tmp.path())
        .output()
        .expect("python3 must be installed");
    assert!(python.status.success(), "{}", text(&python));
    let o = skillcheck(&["lint", "--deny-warnings", "unpacked/demo"], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(fs::metadata(tmp.path().join("unpacked/demo/scripts/run.sh")).is_ok());
}

/// A zip holding `names`; each `(from, to)` pair (same length) is then replaced in the raw
/// bytes, because the zip writer refuses the hostile names a test needs.
fn hostile_zip(path: &Path, names: &[&str], patches: &[(&str, &str)]) {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for name in names {
        writer
            .start_file(*name, SimpleFileOptions::default())
            .unwrap();
        writer.write_all(b"x").unwrap();
    }
    let mut raw = writer.finish().unwrap().into_inner();
    for (from, to) in patches {
        assert_eq!(from.len(), to.len());
        let mut at = 0;
        while let Some(i) = raw[at..]
            .windows(from.len())
            .position(|w| w == from.as_bytes())
        {
            raw[at + i..at + i + to.len()].copy_from_slice(to.as_bytes());
            at += i + to.len();
        }
    }
    fs::write(path, raw).unwrap();
}

#[test]
fn diff_compares_folders_and_packages_and_rejects_hostile_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let skill = demo_skill(tmp.path());
    assert_eq!(
        code(&skillcheck(&["pack", "demo", "-o", "v1.skill"], tmp.path())),
        0
    );
    let same = skillcheck(&["diff", "v1.skill", "demo"], tmp.path());
    assert_eq!(code(&same), 0, "{}", text(&same));
    assert!(text(&same).contains("0 change(s)"), "{}", text(&same));

    write(&skill.join("references/new.md"), "# New\n");
    fs::remove_file(skill.join("scripts/run.sh")).unwrap();
    let o = skillcheck(&["diff", "v1.skill", "demo"], tmp.path());
    assert_eq!(code(&o), 1, "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("+ references/new.md"), "{out}");
    assert!(out.contains("- scripts/run.sh"), "{out}");

    hostile_zip(
        &tmp.path().join("slip.skill"),
        &["demo/SKILL.md", "demo/ab/cd/evil"],
        &[("demo/ab/cd/evil", "demo/../../evil")],
    );
    hostile_zip(
        &tmp.path().join("dupe.skill"),
        &["demo/SKILL.md", "demo/SKILL.mX"],
        &[("demo/SKILL.mX", "demo/SKILL.md")],
    );
    hostile_zip(
        &tmp.path().join("two.skill"),
        &["demo/SKILL.md", "other/SKILL.md"],
        &[],
    );
    fs::write(
        tmp.path().join("truncated.skill"),
        &fs::read(tmp.path().join("v1.skill")).unwrap()[..100],
    )
    .unwrap();
    for bad in ["slip.skill", "dupe.skill", "two.skill", "truncated.skill"] {
        let o = skillcheck(&["diff", bad, "demo"], tmp.path());
        assert_eq!(code(&o), 2, "{bad}: {}", text(&o));
        assert!(
            text(&o).contains(&format!("cannot read {bad}")),
            "{bad}: {}",
            text(&o)
        );
    }
    assert!(!tmp.path().join("evil").exists());
}

#[test]
fn a_zip_bomb_is_refused_without_inflating_it() {
    let tmp = tempfile::tempdir().unwrap();
    demo_skill(tmp.path());
    let bomb = tmp.path().join("bomb.skill");
    let mut writer = zip::ZipWriter::new(fs::File::create(&bomb).unwrap());
    writer
        .start_file("demo/SKILL.md", SimpleFileOptions::default())
        .unwrap();
    writer.write_all(b"---\nname: demo\n---\n").unwrap();
    writer
        .start_file(
            "demo/zeros.bin",
            SimpleFileOptions::default().large_file(true),
        )
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..200 {
        writer.write_all(&zeros).unwrap();
    }
    writer.finish().unwrap();
    assert!(
        fs::metadata(&bomb).unwrap().len() < 2 << 20,
        "the bomb is small on disk"
    );
    let o = skillcheck(&["diff", "bomb.skill", "demo"], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("over the limit"), "{}", text(&o));
}

/// A skill over claude.ai's 200 files whose tree is bundled for that target only: the
/// upload package holds one file for the folder, reads back (lint, --check) as the tree, and
/// the default package keeps every file.
#[test]
fn claude_ai_bundles_configured_folders_and_keeps_the_tree_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let skill = demo_skill(tmp.path());
    for i in 0..210 {
        write(
            &skill.join(format!("assets/tree/t{i:03}/f.py")),
            &format!("# --8<-- [start:r]\nVALUE = {i}\n# --8<-- [end:r]\n"),
        );
    }
    write(
        &skill.join("SKILL.md"),
        "---\nname: demo\ndescription: Packs things. Use when testing pack.\n---\n\n# Demo\n\n\
         Read [the guide](references/guide.md), run `scripts/run.sh`, start from\n\
         [the tree](assets/tree/) and [t007](assets/tree/t007/f.py):\n\n\
         <!-- snippet: assets/tree/t007/f.py#r -->\n```python\nVALUE = 7\n```\n",
    );
    fs::set_permissions(
        skill.join("assets/tree/t001/f.py"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    write(
        &skill.join("skillcheck.toml"),
        "[pack.targets.claude-ai]\nbundle = [\"assets/tree/\"]\n",
    );
    let ai = ["pack", "demo", "--target", "claude-ai", "-o", "ai.skill"];
    let o = skillcheck(&ai, tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("4 entries"), "{}", text(&o));
    let names: Vec<String> = entries(&tmp.path().join("ai.skill"))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        [
            "demo/SKILL.md",
            "demo/assets/tree.bundle.txt",
            "demo/references/guide.md",
            "demo/scripts/run.sh"
        ]
    );
    // Twice the same bytes; --check reads the package back as the tree.
    let again = skillcheck(
        &["pack", "demo", "--target", "claude-ai", "-o", "again.skill"],
        tmp.path(),
    );
    assert_eq!(code(&again), 0, "{}", text(&again));
    assert_eq!(
        fs::read(tmp.path().join("ai.skill")).unwrap(),
        fs::read(tmp.path().join("again.skill")).unwrap()
    );
    let check = skillcheck(
        &[
            "pack",
            "--check",
            "demo",
            "--target",
            "claude-ai",
            "-o",
            "ai.skill",
        ],
        tmp.path(),
    );
    assert_eq!(code(&check), 0, "{}", text(&check));
    // The links and the snippet into the bundled folder resolve inside the package.
    let lint = skillcheck(
        &[
            "lint",
            "--deny-warnings",
            "--target",
            "claude-ai",
            "ai.skill",
        ],
        tmp.path(),
    );
    assert_eq!(code(&lint), 0, "{}", text(&lint));
    assert!(text(&lint).contains("213 files"), "{}", text(&lint));
    // Read back file for file, executable bit included: no difference with the folder.
    let diff = skillcheck(&["diff", "demo", "ai.skill"], tmp.path());
    assert_eq!(code(&diff), 0, "{}", text(&diff));
    // An edit inside the bundled folder is named by its own path.
    write(
        &skill.join("assets/tree/t003/f.py"),
        "# --8<-- [start:r]\nVALUE = 333\n# --8<-- [end:r]\n",
    );
    let stale = skillcheck(
        &[
            "pack",
            "--check",
            "demo",
            "--target",
            "claude-ai",
            "-o",
            "ai.skill",
        ],
        tmp.path(),
    );
    assert_eq!(code(&stale), 1, "{}", text(&stale));
    assert!(
        text(&stale).contains("M assets/tree/t003/f.py"),
        "{}",
        text(&stale)
    );

    // Other targets keep every file.
    let spec = skillcheck(&["pack", "demo", "-o", "spec.skill"], tmp.path());
    assert_eq!(code(&spec), 0, "{}", text(&spec));
    assert_eq!(entries(&tmp.path().join("spec.skill")).len(), 213);
    // Without the bundle the upload is refused, counted as claude.ai counts it.
    fs::remove_file(skill.join("skillcheck.toml")).unwrap();
    let refused = skillcheck(&ai, tmp.path());
    assert_eq!(code(&refused), 1, "{}", text(&refused));
    assert!(text(&refused).contains("213 files"), "{}", text(&refused));
}

#[test]
fn a_file_that_cannot_be_bundled_and_bad_bundle_settings_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let skill = demo_skill(tmp.path());
    write(&skill.join("assets/tree/a.txt"), "a\n");
    fs::write(skill.join("assets/tree/logo.png"), [0x89, b'P', 0xff]).unwrap();
    write(
        &skill.join("skillcheck.toml"),
        "[pack.targets.claude-ai]\nbundle = [\"assets/tree\"]\n",
    );
    let o = skillcheck(
        &["pack", "demo", "--target", "claude-ai", "-o", "ai.skill"],
        tmp.path(),
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        text(&o).contains("`assets/tree/logo.png` is not UTF-8 text"),
        "{}",
        text(&o)
    );
    assert!(!tmp.path().join("ai.skill").exists());

    for (config, expected) in [
        (
            "[pack.targets.claude-web]\nbundle = [\"a\"]\n",
            "skillcheck.toml:1:15: unknown field `claude-web`",
        ),
        (
            "[pack.targets.claude-ai]\nbundle = [\"../a\"]\n",
            "skillcheck.toml:2:11: `[pack.targets.claude-ai] bundle` folder `../a` must be a plain folder path",
        ),
        (
            "[pack.targets.claude-ai]\nbundle = [\"assets\", \"assets/tree\"]\n",
            "overlaps `assets`",
        ),
    ] {
        write(&skill.join("skillcheck.toml"), config);
        let o = skillcheck(&["pack", "demo", "--list"], tmp.path());
        assert_eq!(code(&o), 2, "{}", text(&o));
        assert!(text(&o).contains(expected), "{config}: {}", text(&o));
    }
}
