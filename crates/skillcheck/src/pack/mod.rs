//! `skillcheck pack`: a skill folder to a reproducible `.skill` package, and the comparisons
//! behind `pack --check` and `diff`.
//!
//! The package is built in memory from exactly the files that ship (the lint runs on those
//! same files), then written to a temporary file in the output folder and renamed into place.

pub mod archive;
pub mod command;
pub mod compare;
pub mod select;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::diag::Report;
use crate::lint::{Options, lint_skill};
use crate::settings::Target;
use crate::source::bundle::{BundleError, bundle_folders};
use crate::source::{Rejected, SkillFile, SkillSource, SourceError};

use self::archive::{ArchiveError, build_archive, entry_timestamp};
use self::select::{ExcludeRules, SKILLIGNORE, Selection, read_selection};

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}", unpackable_message(.dir, .rejected))]
    Unpackable {
        dir: PathBuf,
        rejected: Vec<Rejected>,
    },
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{}: cannot bundle for target {target} (skillcheck.toml [pack.targets.{target}] bundle): {source}", .dir.display())]
    Bundle {
        dir: PathBuf,
        target: Target,
        #[source]
        source: BundleError,
    },
}

fn unpackable_message(dir: &Path, rejected: &[Rejected]) -> String {
    let mut message = format!(
        "{} file(s) of {} cannot be packed; fix them or exclude them (.skillignore or [pack] exclude):",
        rejected.len(),
        dir.display()
    );
    for r in rejected {
        message.push_str(&format!(
            "\n  {}: {}",
            dir.join(&r.path).display(),
            r.reason
        ));
    }
    message
}

/// What would ship, and the lint of exactly those files.
#[derive(Debug)]
pub struct Plan {
    /// The skill's folder name: the package's single top folder.
    pub name: String,
    pub dir: PathBuf,
    /// The files of the skill that ship, as the tree holds them (what lint and diff see).
    pub selection: Selection,
    /// The package's entries: `selection.included` with each bundled folder as one file.
    pub entries: Vec<SkillFile>,
    /// The folders bundled for the target.
    pub bundles: Vec<String>,
    pub report: Report,
}

/// Reads the skill at `dir` through the exclusion rules and lints the files that would ship,
/// so that a link to an excluded file is reported as the broken link it would become.
pub fn plan(dir: &Path, config: &Config, options: &Options) -> Result<Plan, PackError> {
    let skillignore = match fs::read_to_string(dir.join(SKILLIGNORE)) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(PackError::Io {
                path: dir.join(SKILLIGNORE),
                source,
            });
        }
    };
    let rules = ExcludeRules::new(&config.pack.exclude, skillignore.as_deref());
    let (source, selection) = read_selection(dir, &config.read_limits(), &rules)?;
    if !source.rejected.is_empty() {
        return Err(PackError::Unpackable {
            dir: dir.to_path_buf(),
            rejected: source.rejected,
        });
    }
    let shipped = SkillSource {
        files: selection.included.clone(),
        ..source
    };
    let report = lint_skill(&shipped, config, options);
    let target = options.target.unwrap_or(config.target);
    let bundles = config.pack.bundles_for(target).to_vec();
    let entries =
        bundle_folders(&selection.included, &bundles).map_err(|source| PackError::Bundle {
            dir: dir.to_path_buf(),
            target,
            source,
        })?;
    Ok(Plan {
        name: shipped.name,
        dir: dir.to_path_buf(),
        selection,
        entries,
        bundles,
        report,
    })
}

/// A package in memory.
#[derive(Debug, Clone)]
pub struct Package {
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub entries: usize,
    pub uncompressed_bytes: u64,
}

/// Builds the package bytes; `source_date_epoch` is the `SOURCE_DATE_EPOCH` value, if set.
pub fn build(plan: &Plan, source_date_epoch: Option<&str>) -> Result<Package, PackError> {
    let timestamp = entry_timestamp(source_date_epoch)?;
    let bytes = build_archive(&plan.name, &plan.entries, timestamp)?;
    Ok(Package {
        sha256: sha256_hex(&bytes),
        entries: plan.entries.len(),
        uncompressed_bytes: plan.entries.iter().map(|f| f.bytes.len() as u64).sum(),
        bytes,
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `dist/<name>.skill`, or `.zip` when asked.
pub fn default_output(name: &str, zip_extension: bool) -> PathBuf {
    let extension = if zip_extension { "zip" } else { "skill" };
    PathBuf::from("dist").join(format!("{name}.{extension}"))
}

/// Writes the package through a temporary file in the output folder and a rename, so a
/// failure at any point leaves the previous package as it was and no partial file behind.
pub fn write_package(path: &Path, bytes: &[u8]) -> Result<(), PackError> {
    let io_error = |source| PackError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(folder).map_err(io_error)?;
    }
    crate::fsutil::write_atomic(path, bytes).map_err(io_error)
}

/// The files of an existing package or folder, for comparisons: a folder goes through the
/// same selection as `pack`, so `diff` shows what a release would change.
pub fn shipped_files(path: &Path, config: &Config) -> Result<(String, Vec<SkillFile>), PackError> {
    if path.is_dir() {
        let plan = plan(path, config, &Options::default())?;
        Ok((plan.name, plan.selection.included))
    } else {
        let source = SkillSource::from_package_file(path, &config.read_limits())?;
        Ok((source.name, source.files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
