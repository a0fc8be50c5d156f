//! What changed between two versions of a skill's files, for `pack --check` and `diff`.

use std::collections::BTreeMap;

use serde::Serialize;
use similar::TextDiff;

use crate::source::SkillFile;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "change")]
pub enum Change {
    Added {
        path: String,
        bytes: usize,
    },
    Removed {
        path: String,
        bytes: usize,
    },
    Modified {
        path: String,
        old_bytes: usize,
        new_bytes: usize,
        /// A unified diff when both sides are text; `None` for binary files.
        diff: Option<String>,
    },
    ModeChanged {
        path: String,
        executable: bool,
    },
}

impl Change {
    pub fn path(&self) -> &str {
        match self {
            Change::Added { path, .. }
            | Change::Removed { path, .. }
            | Change::Modified { path, .. }
            | Change::ModeChanged { path, .. } => path,
        }
    }

    /// One line: a marker (`+` added, `-` removed, `M` modified, `x` mode) and the path.
    pub fn summary_line(&self) -> String {
        match self {
            Change::Added { path, bytes } => format!("+ {path} ({bytes} bytes)"),
            Change::Removed { path, bytes } => format!("- {path} ({bytes} bytes)"),
            Change::Modified {
                path,
                old_bytes,
                new_bytes,
                diff,
            } => {
                let kind = if diff.is_some() { "" } else { ", binary" };
                format!("M {path} ({old_bytes} -> {new_bytes} bytes{kind})")
            }
            Change::ModeChanged { path, executable } => {
                let mode = if *executable { "0755" } else { "0644" };
                format!("x {path} (mode now {mode})")
            }
        }
    }
}

/// Entry-level changes from `old` to `new`, sorted by path.
pub fn compare(old: &[SkillFile], new: &[SkillFile]) -> Vec<Change> {
    let by_path = |files: &[SkillFile]| -> BTreeMap<String, SkillFile> {
        files.iter().map(|f| (f.path.clone(), f.clone())).collect()
    };
    let (old, new) = (by_path(old), by_path(new));
    let mut changes = Vec::new();
    for (path, before) in &old {
        let Some(after) = new.get(path) else {
            changes.push(Change::Removed {
                path: path.clone(),
                bytes: before.bytes.len(),
            });
            continue;
        };
        if before.bytes != after.bytes {
            changes.push(Change::Modified {
                path: path.clone(),
                old_bytes: before.bytes.len(),
                new_bytes: after.bytes.len(),
                diff: unified_diff(path, before, after),
            });
        }
        if before.executable != after.executable {
            changes.push(Change::ModeChanged {
                path: path.clone(),
                executable: after.executable,
            });
        }
    }
    for (path, after) in &new {
        if !old.contains_key(path) {
            changes.push(Change::Added {
                path: path.clone(),
                bytes: after.bytes.len(),
            });
        }
    }
    changes.sort_by(|a, b| a.path().cmp(b.path()));
    changes
}

fn unified_diff(path: &str, before: &SkillFile, after: &SkillFile) -> Option<String> {
    let (before, after) = (before.text()?, after.text()?);
    Some(
        TextDiff::from_lines(before, after)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{path}"), &format!("b/{path}"))
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: &[u8], executable: bool) -> SkillFile {
        SkillFile {
            path: path.into(),
            bytes: bytes.to_vec(),
            executable,
        }
    }

    #[test]
    fn added_removed_modified_and_mode() {
        let old = [
            file("a.md", b"one\ntwo\n", false),
            file("gone.md", b"x", false),
            file("run.sh", b"x", false),
        ];
        let new = [
            file("a.md", b"one\n2\n", false),
            file("new.md", b"y", false),
            file("run.sh", b"x", true),
        ];
        let changes = compare(&old, &new);
        let lines: Vec<_> = changes.iter().map(Change::summary_line).collect();
        assert_eq!(
            lines,
            [
                "M a.md (8 -> 6 bytes)",
                "- gone.md (1 bytes)",
                "+ new.md (1 bytes)",
                "x run.sh (mode now 0755)"
            ]
        );
        let Change::Modified {
            diff: Some(diff), ..
        } = &changes[0]
        else {
            panic!("{changes:?}")
        };
        assert!(diff.contains("--- a/a.md\n+++ b/a.md\n"), "{diff}");
        assert!(diff.contains("-two\n+2\n"), "{diff}");
    }

    #[test]
    fn binary_files_get_no_text_diff() {
        let changes = compare(
            &[file("i.png", &[0, 1], false)],
            &[file("i.png", &[0, 2], false)],
        );
        assert!(matches!(&changes[0], Change::Modified { diff: None, .. }));
    }

    #[test]
    fn identical_trees_have_no_changes() {
        let files = [file("SKILL.md", b"x", false)];
        assert!(compare(&files, &files).is_empty());
    }
}
