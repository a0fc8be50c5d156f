//! The bundle format (a folder as one plain-text file, for packages whose target limits the
//! number of files): byte-exact round trips, the same bytes for the same files, and an error
//! naming the line for every malformation.

use proptest::prelude::*;
use skillcheck::SkillFile;
use skillcheck::source::bundle::{
    BundleError, MAGIC, bundle_folders, decode, encode, shipped_shape,
};

fn file(path: &str, bytes: &[u8], executable: bool) -> SkillFile {
    SkillFile {
        path: path.into(),
        bytes: bytes.to_vec(),
        executable,
    }
}

/// Contents that look like the format itself, to be read back as content, not structure.
fn content() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just(String::new()),
        Just("no final line break".to_owned()),
        Just("=== 644 3 fake\nabc\n".to_owned()),
        Just(format!("{MAGIC}\n# not a comment here\n")),
        Just("\n\n\r\n\u{feff}tab\t\n".to_owned()),
    ]
}

fn files() -> impl Strategy<Value = Vec<SkillFile>> {
    proptest::collection::btree_map(
        "[a-z_ .-]{1,6}(/[a-z_.-]{1,6}){0,2}",
        (content(), any::<bool>()),
        0..12,
    )
    .prop_filter("no `.`/`..` components", |m| {
        m.keys()
            .all(|p| p.split('/').all(|c| c != "." && c != ".."))
    })
    .prop_map(|m| {
        m.into_iter()
            .map(|(path, (text, executable))| file(&path, text.as_bytes(), executable))
            .collect()
    })
}

proptest! {
    #[test]
    fn round_trip_is_byte_exact_and_order_free(files in files()) {
        let bytes = encode(&files).unwrap();
        prop_assert_eq!(&decode(&bytes).unwrap(), &files);
        let mut reversed = files.clone();
        reversed.reverse();
        prop_assert_eq!(encode(&reversed).unwrap(), bytes.clone());
        let folder: Vec<SkillFile> = files
            .iter()
            .map(|f| file(&format!("tree/{}", f.path), &f.bytes, f.executable))
            .collect();
        let shipped = bundle_folders(&folder, &["tree".to_owned()]);
        if files.is_empty() {
            let empty = matches!(shipped, Err(BundleError::EmptyFolder { .. }));
            prop_assert!(empty, "an empty folder is refused");
        } else {
            let shipped = shipped.unwrap();
            prop_assert_eq!(shipped.len(), 1);
            prop_assert_eq!(&shipped[0].path, "tree.bundle.txt");
            prop_assert_eq!(&shipped[0].bytes, &bytes);
            prop_assert_eq!(shipped_shape(&folder, &["tree".to_owned()]), (1, bytes.len() as u64));
        }
    }
}

proptest! {
    /// Whatever follows the first line (a package may hold anything), decoding returns.
    #[test]
    fn decoding_any_bytes_never_panics(
        pieces in proptest::collection::vec(
            prop_oneof![
                any::<Vec<u8>>(),
                "=== (644|755) [0-9]{1,3} [a-z./]{0,6}\n?".prop_map(String::into_bytes),
                Just(b"\n".to_vec()),
            ],
            0..8,
        )
    ) {
        let mut bytes = format!("{MAGIC}\n").into_bytes();
        bytes.extend(pieces.concat());
        let _ = decode(&bytes);
    }
}

#[test]
fn the_text_is_the_tree_readable_in_order() {
    let bytes = encode(&[
        file("b/run.sh", b"#!/bin/sh\necho hi\n", true),
        file("a.txt", b"no newline", false),
    ])
    .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("skillcheck-bundle 1\n# "), "{text}");
    let body = &text[text.find("\n=== ").unwrap() + 1..];
    assert_eq!(
        body,
        "=== 644 10 a.txt\nno newline\n=== 755 18 b/run.sh\n#!/bin/sh\necho hi\n\n"
    );
}

#[test]
fn files_that_are_not_text_are_refused_by_name() {
    let err = encode(&[file("img/logo.png", &[0x89, b'P', 0xff], false)]).unwrap_err();
    assert_eq!(
        err,
        BundleError::NotText {
            path: "img/logo.png".into()
        }
    );
    let err = bundle_folders(
        &[file("assets/img/logo.png", &[0xff], false)],
        &["assets".to_owned()],
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("`assets/img/logo.png` is not UTF-8 text"),
        "{message}"
    );
    assert!(
        matches!(
            encode(&[file("a\nb", b"", false)]),
            Err(BundleError::LineBreakInPath { .. })
        ),
        "a line break would end the header early"
    );
}

#[test]
fn bundling_leaves_other_files_and_refuses_a_taken_name() {
    let tree = [
        file("SKILL.md", b"# S\n", false),
        file("assets/t/a.txt", b"a\n", false),
        file("assets/tx.txt", b"sibling, not inside\n", false),
    ];
    let shipped = bundle_folders(&tree, &["assets/t".to_owned()]).unwrap();
    let paths: Vec<&str> = shipped.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["SKILL.md", "assets/t.bundle.txt", "assets/tx.txt"]);
    let taken = [
        file("assets/t/a.txt", b"a\n", false),
        file("assets/t.bundle.txt", b"mine\n", false),
    ];
    assert!(matches!(
        bundle_folders(&taken, &["assets/t".to_owned()]),
        Err(BundleError::PathTaken { .. })
    ));
    assert!(matches!(
        bundle_folders(&tree, &["nothing/here".to_owned()]),
        Err(BundleError::EmptyFolder { .. })
    ));
}

#[test]
fn every_malformation_names_its_line() {
    let cases: &[(&str, &str)] = &[
        (
            "skillcheck-bundle 2\n",
            "line 1 is not `skillcheck-bundle 1`",
        ),
        (
            "skillcheck-bundle 1\n# c\n=== 644 2 a\nxy\nnot a header\n",
            "line 5: expected a header",
        ),
        (
            "skillcheck-bundle 1\n=== 640 2 a\nxy\n",
            "line 2: expected a header",
        ),
        (
            "skillcheck-bundle 1\n=== 644 9 a\nxy\n",
            "line 2: `a` declares 9 bytes but the file ends after 3",
        ),
        (
            "skillcheck-bundle 1\n=== 644 1 a\nxy\n",
            "line 2: the content of `a` is not followed by a line break",
        ),
        (
            "skillcheck-bundle 1\n=== 644 0 ../etc/passwd\n\n",
            "line 2: `../etc/passwd`: `..`",
        ),
        (
            "skillcheck-bundle 1\n=== 644 0 /abs\n\n",
            "line 2: `/abs`: absolute path",
        ),
        (
            "skillcheck-bundle 1\n=== 644 2 b\nx\n\n=== 644 0 a\n\n",
            "line 5: `a` appears twice, or out of order",
        ),
        (
            "skillcheck-bundle 1\n=== 644 0 a",
            "line 2: the content of `a` is not followed by a line break",
        ),
        (
            "skillcheck-bundle 1\n=== 644 0 a\n\n# late comment\n",
            "line 4: expected a header",
        ),
    ];
    for (bundle, expected) in cases {
        let message = decode(bundle.as_bytes()).unwrap_err().to_string();
        assert!(
            message.starts_with(expected),
            "{bundle:?}: {message}\nexpected: {expected}"
        );
    }
    let not_text = b"skillcheck-bundle 1\n=== 644 1 a\n\xff\n";
    assert_eq!(
        decode(not_text),
        Err(BundleError::NotText { path: "a".into() })
    );
    assert_eq!(decode(b"skillcheck-bundle 1\n").unwrap(), []);
}
