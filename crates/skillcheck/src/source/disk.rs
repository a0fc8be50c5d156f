//! Reading skills from disk: folders, package files, and trees of skills.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::package::{PackageError, read_package};
use super::tree::{Origin, ReadLimits, RejectReason, Rejected, SkillFile, SkillSource};

/// Failure to read a skill at all (as opposed to single rejected entries).
#[derive(Debug, Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a folder")]
    NotADir { path: PathBuf },
    #[error("{path}: {source}")]
    Package {
        path: PathBuf,
        #[source]
        source: PackageError,
    },
    #[error("{path}: {rejected} file(s) cannot be packed, first: {first}")]
    Rejected {
        path: PathBuf,
        rejected: usize,
        first: String,
    },
}

impl SkillSource {
    /// Reads a skill folder. `.git/` is skipped; a symlink whose target is inside the skill is
    /// read as that target; a symlink pointing outside, a fifo, socket, device or unreadable
    /// file, or a file over the limits, becomes a [`Rejected`] entry naming the path.
    pub fn from_dir(dir: &Path, limits: &ReadLimits) -> Result<SkillSource, SourceError> {
        Self::from_dir_pruned(dir, limits, &mut |_, _| false)
    }

    /// [`SkillSource::from_dir`], never reading a path (file, folder or symlink) for which
    /// `skip(relative_path, is_folder)` answers true: `pack` leaves out `node_modules/` or a
    /// `.venv` symlink without walking into it or rejecting it.
    pub fn from_dir_pruned(
        dir: &Path,
        limits: &ReadLimits,
        skip: &mut dyn FnMut(&str, bool) -> bool,
    ) -> Result<SkillSource, SourceError> {
        let io_err = |source| SourceError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let meta = fs::metadata(dir).map_err(io_err)?;
        if !meta.is_dir() {
            return Err(SourceError::NotADir {
                path: dir.to_path_buf(),
            });
        }
        let root = fs::canonicalize(dir).map_err(io_err)?;
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut walker = DirWalker {
            root: &root,
            limits,
            total: 0,
            files: Vec::new(),
            rejected: Vec::new(),
            visited: HashSet::new(),
            skip,
        };
        walker.visited.insert(root.clone());
        walker.walk(&root, "").map_err(io_err)?;
        let DirWalker {
            mut files,
            mut rejected,
            ..
        } = walker;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        rejected.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(SkillSource {
            name,
            origin: Origin::Dir(dir.to_path_buf()),
            files,
            rejected,
            bundles: Vec::new(),
        })
    }

    /// Reads a `.skill`/`.zip` package file into memory (never extracting it).
    pub fn from_package_file(path: &Path, limits: &ReadLimits) -> Result<SkillSource, SourceError> {
        let meta = fs::metadata(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // The compressed file cannot legitimately be larger than the uncompressed cap plus
        // zip overhead; refuse before reading gigabytes into memory.
        let cap = limits
            .max_total_bytes
            .saturating_mul(2)
            .saturating_add(1 << 20);
        if meta.len() > cap {
            return Err(SourceError::Package {
                path: path.to_path_buf(),
                source: PackageError::TooLarge {
                    what: "package file".into(),
                    size: meta.len(),
                    limit: cap,
                },
            });
        }
        let bytes = fs::read(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        read_package(&bytes, path, limits).map_err(|source| SourceError::Package {
            path: path.to_path_buf(),
            source,
        })
    }

    /// For `pack`: an error unless every path of the tree could be read.
    pub fn ensure_complete(&self) -> Result<(), SourceError> {
        match self.rejected.first() {
            None => Ok(()),
            Some(first) => Err(SourceError::Rejected {
                path: match &self.origin {
                    Origin::Dir(p) | Origin::Package(p) => p.clone(),
                },
                rejected: self.rejected.len(),
                first: format!("{}: {}", first.path, first.reason),
            }),
        }
    }
}

struct DirWalker<'a> {
    root: &'a Path,
    limits: &'a ReadLimits,
    total: u64,
    files: Vec<SkillFile>,
    rejected: Vec<Rejected>,
    /// Canonical folders already walked, so symlinked folders cannot loop.
    visited: HashSet<PathBuf>,
    skip: &'a mut dyn FnMut(&str, bool) -> bool,
}

impl DirWalker<'_> {
    fn walk(&mut self, dir: &Path, rel: &str) -> io::Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name == ".git" {
                continue;
            }
            let rel_path = if rel.is_empty() {
                file_name
            } else {
                format!("{rel}/{file_name}")
            };
            let path = entry.path();
            let is_folder = entry.file_type().is_ok_and(|t| t.is_dir());
            if (self.skip)(&rel_path, is_folder) {
                continue;
            }
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.reject(
                        rel_path,
                        RejectReason::Unreadable {
                            message: e.to_string(),
                        },
                    );
                    continue;
                }
            };
            let via_symlink = meta.file_type().is_symlink();
            let (real, meta) = if via_symlink {
                let shown = fs::read_link(&path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                match fs::canonicalize(&path) {
                    Ok(real) if real.starts_with(self.root) => match fs::metadata(&real) {
                        Ok(m) => (real, m),
                        Err(e) => {
                            self.reject(
                                rel_path,
                                RejectReason::Unreadable {
                                    message: e.to_string(),
                                },
                            );
                            continue;
                        }
                    },
                    Ok(_) => {
                        self.reject(rel_path, RejectReason::SymlinkOutside { target: shown });
                        continue;
                    }
                    Err(_) => {
                        self.reject(rel_path, RejectReason::SymlinkBroken { target: shown });
                        continue;
                    }
                }
            } else {
                (path, meta)
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                // Only a symlinked folder can lead back up the tree: `real` is canonical then.
                if !via_symlink || self.visited.insert(real.clone()) {
                    self.walk(&real, &rel_path)?;
                }
            } else if ft.is_file() {
                self.read_file(&real, rel_path, &meta);
            } else {
                self.reject(
                    rel_path,
                    RejectReason::Special {
                        kind: special_kind(&ft),
                    },
                );
            }
        }
        Ok(())
    }

    fn read_file(&mut self, path: &Path, rel_path: String, meta: &fs::Metadata) {
        let size = meta.len();
        if size > self.limits.max_file_bytes {
            let limit = self.limits.max_file_bytes;
            return self.reject(rel_path, RejectReason::FileTooLarge { size, limit });
        }
        if self.total + size > self.limits.max_total_bytes {
            let limit = self.limits.max_total_bytes;
            return self.reject(rel_path, RejectReason::TotalTooLarge { limit });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // The file may grow between stat and read: never read past the limit.
        let read = fs::File::open(path).and_then(|f| {
            f.take(self.limits.max_file_bytes + 1)
                .read_to_end(&mut bytes)
        });
        match read {
            Ok(_) if bytes.len() as u64 > self.limits.max_file_bytes => {
                let limit = self.limits.max_file_bytes;
                let size = bytes.len() as u64;
                self.reject(rel_path, RejectReason::FileTooLarge { size, limit });
            }
            Ok(_) => {
                self.total += bytes.len() as u64;
                self.files.push(SkillFile {
                    path: rel_path,
                    bytes,
                    executable: is_executable(meta),
                });
            }
            Err(e) => self.reject(
                rel_path,
                RejectReason::Unreadable {
                    message: e.to_string(),
                },
            ),
        }
    }

    fn reject(&mut self, path: String, reason: RejectReason) {
        self.rejected.push(Rejected { path, reason });
    }
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &fs::Metadata) -> bool {
    false
}

#[cfg(unix)]
fn special_kind(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_ft: &fs::FileType) -> &'static str {
    "special file"
}

/// Finds the skills under `path`: the folder itself if it holds `SKILL.md`, otherwise every
/// folder at any depth that does (not descending into a skill, nor into hidden folders,
/// `target` or `node_modules`). Sorted.
pub fn discover_skills(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    discover_into(path, &mut found, true)?;
    found.sort();
    Ok(found)
}

fn discover_into(dir: &Path, found: &mut Vec<PathBuf>, top: bool) -> io::Result<()> {
    if dir.join("SKILL.md").is_file() {
        found.push(dir.to_path_buf());
        return Ok(());
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if !top => {
            // An unreadable subfolder of a tree is not a skill; the top one is an error.
            let _ = e;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        // Follow symlinked folders only through their metadata; loops end at `SKILL.md` or
        // at the file system's own symlink depth limit.
        if entry.file_type()?.is_dir() {
            discover_into(&entry.path(), found, false)?;
        }
    }
    Ok(())
}
