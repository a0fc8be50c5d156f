//! Reading `.skill`/`.zip` packages in memory, defensively.
//!
//! A package is a zip whose single top folder is the skill's name. Nothing is ever extracted:
//! entries are read into a [`SkillSource`] after their names and sizes have been checked.

use std::collections::HashSet;
use std::io::{Cursor, Read};
use std::path::Path;

use thiserror::Error;

use super::bundle::{self, BundleError};
use super::tree::{Origin, ReadLimits, SkillFile, SkillSource};

/// More entries than any sane skill has; bounds the work on a hostile central directory.
pub const MAX_ENTRIES: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PackageError {
    #[error("not a readable zip archive ({0}); the file is truncated or corrupt")]
    Corrupt(String),
    #[error("entry {index} has a name that is not UTF-8")]
    NameNotUtf8 { index: usize },
    #[error("entry `{name}`: {problem}")]
    UnsafeName { name: String, problem: &'static str },
    #[error(
        "entries `{first}` and `{second}` are in different top folders; a package holds exactly one"
    )]
    SeveralTopFolders { first: String, second: String },
    #[error("entry `{name}` is not inside a top folder; a package holds `<skill-name>/...` only")]
    OutsideTopFolder { name: String },
    #[error("the package holds no files")]
    Empty,
    #[error("duplicate entry `{name}`")]
    Duplicate { name: String },
    #[error("entry `{name}` is a symlink; packages hold regular files only")]
    Symlink { name: String },
    #[error("entry `{name}` is encrypted")]
    Encrypted { name: String },
    #[error("entry `{name}` declares {declared} bytes but holds {actual}")]
    SizeMismatch {
        name: String,
        declared: u64,
        actual: u64,
    },
    #[error("{what} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("entry `{name}` cannot be read: {message}")]
    Read { name: String, message: String },
    #[error("bundle `{name}`: {source}")]
    Bundle {
        name: String,
        #[source]
        source: BundleError,
    },
}

/// Reads a package from memory. `display` names it in the resulting [`SkillSource`].
pub fn read_package(
    bytes: &[u8],
    display: &Path,
    limits: &ReadLimits,
) -> Result<SkillSource, PackageError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| PackageError::Corrupt(e.to_string()))?;
    if archive.len() > MAX_ENTRIES {
        return Err(PackageError::TooManyEntries);
    }
    let mut top: Option<(String, String)> = None;
    let mut seen = HashSet::new();
    let mut declared_total: u64 = 0;
    let mut files = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| PackageError::Corrupt(e.to_string()))?;
        let name = std::str::from_utf8(entry.name_raw())
            .map_err(|_| PackageError::NameNotUtf8 { index })?
            .to_string();
        check_name(&name)?;
        if !seen.insert(name.clone()) {
            return Err(PackageError::Duplicate { name });
        }
        let Some((first, rest)) = name.split_once('/') else {
            return Err(PackageError::OutsideTopFolder { name });
        };
        match &top {
            None => top = Some((first.to_string(), name.clone())),
            Some((t, example)) if t != first => {
                return Err(PackageError::SeveralTopFolders {
                    first: example.clone(),
                    second: name,
                });
            }
            Some(_) => {}
        }
        if entry.is_dir() || rest.is_empty() {
            continue;
        }
        if entry.is_symlink() {
            return Err(PackageError::Symlink { name });
        }
        if entry.encrypted() {
            return Err(PackageError::Encrypted { name });
        }
        let declared = entry.size();
        if declared > limits.max_file_bytes {
            return Err(PackageError::TooLarge {
                what: format!("entry `{name}`"),
                size: declared,
                limit: limits.max_file_bytes,
            });
        }
        declared_total += declared;
        if declared_total > limits.max_total_bytes {
            return Err(PackageError::TooLarge {
                what: "the uncompressed package".into(),
                size: declared_total,
                limit: limits.max_total_bytes,
            });
        }
        let mut data = Vec::with_capacity(declared as usize);
        // Never trust the declared size: read at most one byte more than it.
        (&mut entry)
            .take(declared + 1)
            .read_to_end(&mut data)
            .map_err(|e| PackageError::Read {
                name: name.clone(),
                message: e.to_string(),
            })?;
        if data.len() as u64 != declared {
            return Err(PackageError::SizeMismatch {
                name,
                declared,
                actual: data.len() as u64,
            });
        }
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        files.push(SkillFile {
            path: rest.to_string(),
            bytes: data,
            executable,
        });
    }
    // zip collapses duplicate names in its index; ask it too, in case both spellings were equal.
    if archive.has_duplicate_names() {
        return Err(PackageError::Duplicate {
            name: "(central directory)".into(),
        });
    }
    let Some((name, _)) = top else {
        return Err(PackageError::Empty);
    };
    if files.is_empty() {
        return Err(PackageError::Empty);
    }
    let (mut files, bundles) = unbundle(files, &name)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(SkillSource {
        name,
        origin: Origin::Package(display.to_path_buf()),
        files,
        rejected: Vec::new(),
        bundles,
    })
}

/// Reads every bundle file (`<folder>.bundle.txt` starting with the bundle's first line) back
/// into the files of its folder, so a package is linted and compared as the tree it came from.
fn unbundle(
    files: Vec<SkillFile>,
    top: &str,
) -> Result<(Vec<SkillFile>, Vec<String>), PackageError> {
    let mut out = Vec::with_capacity(files.len());
    let mut bundles = Vec::new();
    let mut seen: HashSet<String> = files.iter().map(|f| f.path.clone()).collect();
    for file in files {
        let folder = match file.path.strip_suffix(bundle::SUFFIX) {
            Some(folder) if bundle::looks_like_bundle(&file.bytes) => folder.to_owned(),
            _ => {
                out.push(file);
                continue;
            }
        };
        let members = bundle::decode(&file.bytes).map_err(|source| PackageError::Bundle {
            name: format!("{top}/{}", file.path),
            source,
        })?;
        for member in members {
            let path = format!("{folder}/{}", member.path);
            if !seen.insert(path.clone()) {
                return Err(PackageError::Duplicate {
                    name: format!("{top}/{path}"),
                });
            }
            out.push(SkillFile { path, ..member });
        }
        bundles.push(folder);
    }
    Ok((out, bundles))
}

fn check_name(name: &str) -> Result<(), PackageError> {
    let problem = if name.starts_with('/') {
        Some("absolute path")
    } else if name.contains('\\') {
        Some("backslash in path (zip paths use `/`)")
    } else if name.len() >= 2 && name.as_bytes()[1] == b':' {
        Some("drive-letter path")
    } else if name.chars().any(char::is_control) {
        Some("control character in path")
    } else if name
        .trim_end_matches('/')
        .split('/')
        .any(|c| c == ".." || c == "." || c.is_empty())
    {
        Some("`..`, `.` or empty path component")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(PackageError::UnsafeName {
            name: name.to_string(),
            problem,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn read(bytes: &[u8]) -> Result<SkillSource, PackageError> {
        read_package(bytes, Path::new("t.skill"), &ReadLimits::default())
    }

    #[test]
    fn reads_a_well_formed_package() {
        let bytes = zip_of(&[("demo/SKILL.md", b"---\n"), ("demo/a/b.txt", b"x")]);
        let src = read(&bytes).unwrap();
        assert_eq!(src.name, "demo");
        let paths: Vec<_> = src.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["SKILL.md", "a/b.txt"]);
    }

    #[test]
    fn rejects_hostile_names() {
        for bad in [
            "/etc/passwd",
            "demo/../../x",
            "demo/./x",
            "demo//x",
            "C:/x",
            "demo\\x",
        ] {
            let bytes = zip_of(&[("demo/SKILL.md", b""), (bad, b"x")]);
            assert!(
                matches!(read(&bytes), Err(PackageError::UnsafeName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_two_top_folders_and_loose_files() {
        let bytes = zip_of(&[("a/SKILL.md", b""), ("b/SKILL.md", b"")]);
        assert!(matches!(
            read(&bytes),
            Err(PackageError::SeveralTopFolders { .. })
        ));
        let bytes = zip_of(&[("SKILL.md", b"")]);
        assert!(matches!(
            read(&bytes),
            Err(PackageError::OutsideTopFolder { .. })
        ));
    }

    #[test]
    fn rejects_truncated_and_garbage_input_without_panicking() {
        let bytes = zip_of(&[("demo/SKILL.md", b"hello hello hello")]);
        for cut in 0..bytes.len() {
            let _ = read(&bytes[..cut]);
        }
        assert!(matches!(read(b"not a zip"), Err(PackageError::Corrupt(_))));
        let mut flipped = bytes.clone();
        for b in flipped.iter_mut().skip(30).take(20) {
            *b ^= 0xff;
        }
        assert!(read(&flipped).is_err());
    }

    #[test]
    fn caps_the_decompressed_size() {
        let big = vec![0u8; 2 * 1024 * 1024];
        let bytes = zip_of(&[("demo/SKILL.md", b""), ("demo/bomb.bin", &big)]);
        let limits = ReadLimits {
            max_file_bytes: 1024 * 1024,
            max_total_bytes: 4 * 1024 * 1024,
        };
        let err = read_package(&bytes, Path::new("t"), &limits).unwrap_err();
        assert!(matches!(err, PackageError::TooLarge { .. }), "{err}");
    }
}
