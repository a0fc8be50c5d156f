//! The deterministic zip writer: the same files always give the same bytes.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::source::SkillFile;

/// Fixed so that a package's bytes depend only on the tree, never on a library default;
/// changing either is a format change that changes every checksum.
const COMPRESSION: CompressionMethod = CompressionMethod::Deflated;
const COMPRESSION_LEVEL: i64 = 6;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot write zip entry `{path}`: {source}")]
    Zip {
        path: String,
        #[source]
        source: zip::result::ZipError,
    },
    #[error(
        "SOURCE_DATE_EPOCH=`{value}` is not a whole number of seconds since 1970; \
         set it to an integer such as `git log -1 --format=%ct`, or unset it"
    )]
    BadSourceDateEpoch { value: String },
}

/// The timestamp every entry carries: 1980-01-01 00:00, or `SOURCE_DATE_EPOCH`
/// (reproducible-builds.org) clamped to the range a zip can store.
pub fn entry_timestamp(source_date_epoch: Option<&str>) -> Result<DateTime, ArchiveError> {
    let Some(value) = source_date_epoch else {
        return Ok(DateTime::default());
    };
    let seconds: i64 = value
        .trim()
        .parse()
        .map_err(|_| ArchiveError::BadSourceDateEpoch {
            value: value.to_owned(),
        })?;
    Ok(dos_datetime_from_unix(seconds))
}

fn dos_datetime_from_unix(seconds: i64) -> DateTime {
    const FIRST: i64 = 315_532_800; // 1980-01-01T00:00:00Z, the earliest zip time
    const LAST: i64 = 4_354_819_198; // 2107-12-31T23:59:58Z, the latest
    let seconds = seconds.clamp(FIRST, LAST);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let in_day = seconds.rem_euclid(86_400);
    let narrow = |n: i64| u8::try_from(n).unwrap_or_default();
    DateTime::from_date_and_time(
        u16::try_from(year).unwrap_or(1980),
        narrow(month),
        narrow(day),
        narrow(in_day / 3600),
        narrow(in_day % 3600 / 60),
        narrow(in_day % 60),
    )
    .unwrap_or_default()
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard Hinnant.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Writes `files` (in any order) under the single top folder `top`: sorted by path, no
/// folder entries, one timestamp, modes 0644/0755, one compression method and level.
pub fn build_archive(
    top: &str,
    files: &[SkillFile],
    timestamp: DateTime,
) -> Result<Vec<u8>, ArchiveError> {
    let mut sorted: Vec<&SkillFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for file in sorted {
        let name = format!("{top}/{}", file.path);
        let mode = if file.executable {
            0o100_755
        } else {
            0o100_644
        };
        let options = SimpleFileOptions::default()
            .compression_method(COMPRESSION)
            .compression_level(Some(COMPRESSION_LEVEL))
            .last_modified_time(timestamp)
            .unix_permissions(mode)
            .large_file(false);
        writer
            .start_file(name.as_str(), options)
            .and_then(|()| writer.write_all(&file.bytes).map_err(Into::into))
            .map_err(|source| ArchiveError::Zip {
                path: name.clone(),
                source,
            })?;
    }
    let cursor = writer.finish().map_err(|source| ArchiveError::Zip {
        path: "<central directory>".to_owned(),
        source,
    })?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, executable: bool) -> SkillFile {
        SkillFile {
            path: path.into(),
            bytes: path.as_bytes().repeat(50),
            executable,
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn same_files_same_bytes_in_any_order() {
        let (a, b) = (file("b.md", false), file("SKILL.md", true));
        let t = entry_timestamp(None).unwrap();
        let one = build_archive("x", &[a.clone(), b.clone()], t).unwrap();
        let two = build_archive("x", &[b, a], t).unwrap();
        assert_eq!(one, two);
    }

    #[test]
    fn entries_are_sorted_with_normalised_modes() {
        let t = entry_timestamp(None).unwrap();
        let bytes = build_archive("x", &[file("z.sh", true), file("a.md", false)], t).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let names: Vec<String> = (0..archive.len())
            .map(|i| archive.by_index(i).unwrap().name().unwrap().into_owned())
            .collect();
        assert_eq!(names, ["x/a.md", "x/z.sh"]);
        assert_eq!(archive.by_index(0).unwrap().unix_mode(), Some(0o100_644));
        assert_eq!(archive.by_index(1).unwrap().unix_mode(), Some(0o100_755));
    }

    #[test]
    fn source_date_epoch_is_used_clamped_and_validated() {
        let t = entry_timestamp(Some("1700000000")).unwrap();
        assert_eq!((t.year(), t.month(), t.day()), (2023, 11, 14));
        assert_eq!(entry_timestamp(Some("0")).unwrap().year(), 1980);
        assert!(entry_timestamp(Some("yesterday")).is_err());
    }
}
