//! A skill as a virtual file tree, read from a folder or from an in-memory package.
//!
//! Both `lint` and `pack` work on a [`SkillSource`], so they see exactly the same files.

use std::path::PathBuf;

use thiserror::Error;

/// Size limits applied while reading; `pack` uses the same values from `[pack]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_file_bytes: 10 * 1024 * 1024,
            max_total_bytes: 50 * 1024 * 1024,
        }
    }
}

/// One regular file of a skill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillFile {
    /// Relative to the skill root, `/`-separated, no `.` or `..` components.
    pub path: String,
    pub bytes: Vec<u8>,
    /// Any execute bit set (packs as 0755, otherwise 0644).
    pub executable: bool,
}

impl SkillFile {
    pub fn is_markdown(&self) -> bool {
        is_markdown_path(&self.path)
    }

    /// The contents as text, if they are UTF-8 without NUL bytes.
    pub fn text(&self) -> Option<&str> {
        if self.bytes.contains(&0) {
            return None;
        }
        std::str::from_utf8(&self.bytes).ok()
    }
}

pub fn is_markdown_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".md") || lower.ends_with(".markdown")
}

/// Why a path of the tree was left out of [`SkillSource::files`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RejectReason {
    #[error("symlink points outside the skill (to {target})")]
    SymlinkOutside { target: String },
    #[error("symlink is broken or loops (to {target})")]
    SymlinkBroken { target: String },
    #[error("not a regular file ({kind})")]
    Special { kind: &'static str },
    #[error("cannot be read: {message}")]
    Unreadable { message: String },
    #[error("{size} bytes is over the per-file limit of {limit} bytes")]
    FileTooLarge { size: u64, limit: u64 },
    #[error("the skill's total size would exceed the limit of {limit} bytes")]
    TotalTooLarge { limit: u64 },
}

/// A path that could not become a [`SkillFile`]; lint reports it, pack refuses to pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub path: String,
    pub reason: RejectReason,
}

/// Where a skill was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Dir(PathBuf),
    Package(PathBuf),
}

/// A skill: its root name and its files, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillSource {
    /// The skill root's folder name (the package's top folder for packages).
    pub name: String,
    pub origin: Origin,
    /// Sorted by `path` (byte order), unique.
    pub files: Vec<SkillFile>,
    pub rejected: Vec<Rejected>,
    /// Folders that arrived as one bundle file each (`<folder>.bundle.txt`, see
    /// [`super::bundle`]) and were read back into `files`: set by the package reader only.
    pub bundles: Vec<String>,
}

impl SkillSource {
    pub fn file(&self, path: &str) -> Option<&SkillFile> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// True when `path` is a folder of the tree (some file lies under it).
    pub fn is_dir(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return true;
        }
        // Files under `path/` sort after `path` and after siblings like `path-x` or `path.md`
        // (`-` and `.` sort before `/`), all of which start with `path`.
        let start = self.files.partition_point(|f| f.path.as_str() < path);
        self.files[start..]
            .iter()
            .take_while(|f| f.path.starts_with(path))
            .any(|f| f.path.as_bytes().get(path.len()) == Some(&b'/'))
    }

    /// Sets the contents of `path` (relative, `/`-separated), adding the file when the tree
    /// lacks it: the language server lints editors' unsaved buffers this way.
    pub fn put_file(&mut self, path: &str, bytes: Vec<u8>) {
        match self.files.binary_search_by(|f| f.path.as_str().cmp(path)) {
            Ok(i) => self.files[i].bytes = bytes,
            Err(i) => self.files.insert(
                i,
                SkillFile {
                    path: path.to_string(),
                    bytes,
                    executable: false,
                },
            ),
        }
    }

    /// Total bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes.len() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_dir_uses_prefixes_not_substrings() {
        let src = SkillSource {
            name: "s".into(),
            origin: Origin::Dir(PathBuf::from("s")),
            files: ["a/b.txt", "ab/c.txt", "assets/x/y.txt"]
                .iter()
                .map(|p| SkillFile {
                    path: p.to_string(),
                    bytes: vec![],
                    executable: false,
                })
                .collect(),
            rejected: vec![],
            bundles: vec![],
        };
        assert!(src.is_dir("a"));
        assert!(src.is_dir("assets/x/"));
        assert!(!src.is_dir("assets/x/y.txt"));
        assert!(!src.is_dir("as"));
        assert!(src.file("ab/c.txt").is_some());
    }

    #[test]
    fn put_file_replaces_or_inserts_in_order() {
        let mut src = SkillSource {
            name: "s".into(),
            origin: Origin::Dir(PathBuf::from("s")),
            files: vec![],
            rejected: vec![],
            bundles: vec![],
        };
        src.put_file("b.md", b"1".to_vec());
        src.put_file("a.md", b"2".to_vec());
        src.put_file("b.md", b"3".to_vec());
        let shown: Vec<(&str, &[u8])> = src
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.bytes.as_slice()))
            .collect();
        assert_eq!(shown, [("a.md", &b"2"[..]), ("b.md", &b"3"[..])]);
    }
}
