//! `--fix` and `--diff`: certain edits only, written atomically.

use std::path::PathBuf;

use similar::TextDiff;

use crate::diag::{Edit, Report};
use crate::source::{Origin, SkillSource};

/// The fixed contents of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFix {
    /// Relative to the skill root.
    pub file: String,
    /// On disk (only folder skills can be fixed).
    pub disk_path: PathBuf,
    /// Shown in diffs.
    pub display: String,
    pub before: String,
    pub after: String,
    pub edits: usize,
}

/// The edits that apply together to a text of `len` bytes, sorted by start: an edit that
/// overlaps an earlier one, or reaches past the end, is left out. `--fix` and the language
/// server's "fix all" apply the same set.
pub fn compatible_edits<'a>(edits: &[&'a Edit], len: usize) -> Vec<&'a Edit> {
    let mut sorted: Vec<&Edit> = edits.to_vec();
    sorted.sort_by_key(|e| (e.range.start, e.range.end));
    let mut pos = 0;
    sorted.retain(|edit| {
        let fits = edit.range.start >= pos && edit.range.end <= len;
        if fits {
            pos = edit.range.end;
        }
        fits
    });
    sorted
}

/// Applies the [`compatible_edits`] to `text`; returns the result and how many applied.
pub fn apply_edits(text: &str, edits: &[&Edit]) -> (String, usize) {
    let chosen = compatible_edits(edits, text.len());
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for edit in &chosen {
        out.push_str(&text[pos..edit.range.start]);
        out.push_str(&edit.replacement);
        pos = edit.range.end;
    }
    out.push_str(&text[pos..]);
    (out, chosen.len())
}

/// The fixes a report offers for a skill read from a folder.
pub fn plan(source: &SkillSource, report: &Report) -> Vec<FileFix> {
    let Origin::Dir(root) = &source.origin else {
        return Vec::new();
    };
    let mut files: Vec<&str> = report
        .diagnostics
        .iter()
        .filter(|d| d.fix.is_some())
        .map(|d| d.file.as_str())
        .collect();
    files.sort_unstable();
    files.dedup();
    files
        .into_iter()
        .filter_map(|file| {
            let text = source.file(file)?.text()?;
            let edits: Vec<&Edit> = report
                .diagnostics
                .iter()
                .filter(|d| d.file == file)
                .filter_map(|d| d.fix.as_ref())
                .collect();
            let (after, applied) = apply_edits(text, &edits);
            (applied > 0 && after != text).then(|| FileFix {
                file: file.to_string(),
                disk_path: root.join(file),
                display: report.display_path(file),
                before: text.to_string(),
                after,
                edits: applied,
            })
        })
        .collect()
}

pub fn unified_diff(fix: &FileFix) -> String {
    TextDiff::from_lines(&fix.before, &fix.after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{}", fix.display), &format!("b/{}", fix.display))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_in_order_and_skip_overlaps() {
        let a = Edit {
            range: 4..5,
            replacement: "X".into(),
        };
        let b = Edit {
            range: 0..0,
            replacement: ">".into(),
        };
        let c = Edit {
            range: 4..6,
            replacement: "Y".into(),
        };
        let (out, n) = apply_edits("abcdefg", &[&a, &b, &c]);
        assert_eq!((out.as_str(), n), (">abcdXfg", 2));
    }
}
