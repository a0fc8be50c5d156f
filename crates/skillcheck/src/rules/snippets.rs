//! Snippet sync: a code block marked as an excerpt of a file of the skill must equal it.
//!
//! The marker is an HTML comment on the line right before the fence:
//! `<!-- snippet: PATH#REGION -->`, PATH relative to the skill root, `#REGION` optional (the
//! whole file). In the file, a region runs between lines holding `--8<-- [start:REGION]` and
//! `--8<-- [end:REGION]` (the pymdownx.snippets convention, behind any comment leader).

use std::sync::LazyLock;

use regex::Regex;
use similar::TextDiff;

use crate::diag::{Diagnostic, Edit};
use crate::engine::{Context, MdFile, Sink};
use crate::parse::markdown::CodeBlock;
use crate::registry::{SNIPPETS, declare_rules};
use crate::text::join_normalized;

declare_rules! {
    SNIPPET_MISMATCH = "SN001", "snippet-mismatch", Error, on, fixable: true,
        summary: "a code block marked `<!-- snippet: PATH#REGION -->` differs from that region of the file",
        why: "A copy of code in prose drifts from the file it shows; the agent then teaches code the skill's own scripts no longer contain. The marker makes the copy checkable.",
        example: "<!-- snippet: scripts/app.py#create_app -->\n```python\ndef create_app(): ...\n```\n\nscripts/app.py:\n# --8<-- [start:create_app]\ndef create_app() -> FastAPI:\n    return FastAPI()\n# --8<-- [end:create_app]",
        fix: "Run `skillcheck lint --fix`: it rewrites the block from the file. Syntax: the comment `<!-- snippet: PATH#REGION -->` on the line right before the fence, PATH relative to the skill root, `#REGION` optional (the whole file). In the file, the region lies between lines containing `--8<-- [start:REGION]` and `--8<-- [end:REGION]` after any comment leader (`#`, `//`, `--`, `<!-- -->`); those lines, and marker lines of other regions inside it, are left out, and the region's common indentation is removed. Trailing whitespace at the end of the block does not count.",
        source: SNIPPETS;
    SNIPPET_SOURCE_MISSING = "SN002", "snippet-source-missing", Error, on, fixable: false,
        summary: "a snippet marker names a file or region that does not exist",
        why: "The block claims to be an excerpt of something that is not there; nothing keeps it true.",
        example: "<!-- snippet: scripts/app.py#create-app --> when the region is `create_app`",
        fix: "Correct the path (relative to the skill root) or the region name, or add `--8<-- [start:NAME]` and `--8<-- [end:NAME]` lines around the region in the file.",
        source: SNIPPETS;
    SNIPPET_MARKER_MISPLACED = "SN003", "snippet-marker-misplaced", Warning, on, fixable: false,
        summary: "a `<!-- snippet: ... -->` comment is not on the line right before a fenced code block",
        why: "Only the block right after the marker is checked; a marker elsewhere checks nothing.",
        example: "<!-- snippet: scripts/app.py -->\n\n```python",
        fix: "Put the comment on the line directly above the opening fence.",
        source: SNIPPETS;
}

static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^[ \t>]*<!--\s*snippet:\s*(\S*?)\s*-->[ \t]*\r?$").expect("static regex")
});

const START: &str = "--8<-- [start:";
const END: &str = "--8<-- [end:";

/// Why a region could not be cut out of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionError {
    NoStart,
    /// 1-based line of the start marker.
    NoEnd(usize),
}

/// The name in a marker line (`# --8<-- [start:NAME]` → `NAME`), for `START` or `END`.
fn marker_name<'t>(line: &'t str, kind: &str) -> Option<&'t str> {
    let rest = &line[line.find(kind)? + kind.len()..];
    rest.find(']').map(|end| &rest[..end])
}

fn is_marker_line(line: &str) -> bool {
    marker_name(line, START).is_some() || marker_name(line, END).is_some()
}

/// The text of `region` in `text` (the whole text when `None`): marker lines dropped, the
/// common leading indentation removed, ending with one line break.
pub fn extract(text: &str, region: Option<&str>) -> Result<String, RegionError> {
    let lines: Vec<&str> = text.lines().collect();
    let body: Vec<&str> = match region {
        None => lines
            .iter()
            .copied()
            .filter(|l| !is_marker_line(l))
            .collect(),
        Some(name) => {
            let start = lines
                .iter()
                .position(|l| marker_name(l, START) == Some(name))
                .ok_or(RegionError::NoStart)?;
            let len = lines[start + 1..]
                .iter()
                .position(|l| marker_name(l, END) == Some(name))
                .ok_or(RegionError::NoEnd(start + 1))?;
            lines[start + 1..start + 1 + len]
                .iter()
                .copied()
                .filter(|l| !is_marker_line(l))
                .collect()
        }
    };
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches([' ', '\t']).len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in body {
        let line = line.trim_end_matches('\r');
        out.push_str(line.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    Ok(out)
}

/// Equal once line endings and the trailing whitespace at the end are normalised.
fn same(a: &str, b: &str) -> bool {
    a.replace("\r\n", "\n").trim_end() == b.replace("\r\n", "\n").trim_end()
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    for (path, file) in &ctx.files {
        if !file.text.contains("snippet:") {
            continue;
        }
        for m in MARKER.captures_iter(file.text) {
            let (Some(whole), Some(target)) = (m.get(0), m.get(1)) else {
                continue;
            };
            let line = file.index.line(whole.start());
            let block = file.doc.code_blocks.iter().find(|b| b.line == line + 1);
            let col = file.text[whole.range()].find('<').map_or(1, |i| i + 1);
            let at = |rule, message: String| {
                Diagnostic::new(rule, *path, message)
                    .at(line, col)
                    .source_line(file.source_line(line, col, 0))
            };
            let Some(block) = block else {
                sink.emit(
                    &SNIPPET_MARKER_MISPLACED,
                    at(
                        &SNIPPET_MARKER_MISPLACED,
                        format!(
                            "snippet marker `{}` is not followed by a fenced code block",
                            target.as_str()
                        ),
                    )
                    .help("put the comment on the line directly above the opening fence"),
                );
                continue;
            };
            let (file_part, region) = match target.as_str().split_once('#') {
                Some((f, r)) => (f, Some(r)),
                None => (target.as_str(), None),
            };
            let source = join_normalized("", file_part)
                .filter(|p| !p.is_empty() && !file_part.starts_with('/'))
                .and_then(|p| ctx.source.file(&p))
                .and_then(|f| f.text());
            let Some(source) = source else {
                sink.emit(
                    &SNIPPET_SOURCE_MISSING,
                    at(
                        &SNIPPET_SOURCE_MISSING,
                        format!("snippet source `{file_part}` is not a text file of the skill"),
                    )
                    .help("write PATH relative to the skill root, e.g. `scripts/app.py#region`"),
                );
                continue;
            };
            let expected = match extract(source, region) {
                Ok(text) => text,
                Err(e) => {
                    let region = region.unwrap_or_default();
                    let message = match e {
                        RegionError::NoStart => format!(
                            "`{file_part}` has no region `{region}` (no line with `--8<-- [start:{region}]`)"
                        ),
                        RegionError::NoEnd(start) => format!(
                            "region `{region}` of `{file_part}` starts at line {start} and never ends"
                        ),
                    };
                    sink.emit(
                        &SNIPPET_SOURCE_MISSING,
                        at(&SNIPPET_SOURCE_MISSING, message).help(format!(
                            "mark the region in {file_part} with `--8<-- [start:{region}]` and `--8<-- [end:{region}]` comment lines"
                        )),
                    );
                    continue;
                }
            };
            if same(&block.content, &expected) {
                continue;
            }
            let mut d = Diagnostic::new(
                &SNIPPET_MISMATCH,
                *path,
                format!("code block differs from `{}`", target.as_str()),
            )
            .at(block.line, block.col)
            .source_line(file.source_line(block.line, block.col, 0))
            .help(format!(
                "`-` the block, `+` the file; `skillcheck lint --fix` rewrites the block\n{}",
                short_diff(&block.content, &expected)
            ));
            if let Some(edit) = rewrite(file, block, &expected) {
                d = d.fix(edit);
            }
            sink.emit(&SNIPPET_MISMATCH, d);
        }
    }
}

/// The first changed lines, as `-block` / `+file`, at most eight.
fn short_diff(block: &str, expected: &str) -> String {
    let diff = TextDiff::from_lines(block, expected);
    let mut out: Vec<String> = Vec::new();
    let mut changed = 0;
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Equal => continue,
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
        };
        changed += 1;
        if out.len() < 8 {
            out.push(format!(
                "{sign}{}",
                change.value().trim_end_matches(['\n', '\r'])
            ));
        }
    }
    if changed > out.len() {
        out.push(format!("({} more changed lines)", changed - out.len()));
    }
    out.join("\n")
}

/// The edit that replaces the block's content with `expected`, keeping the prefix (list
/// indentation, block quote markers) the fence line has; `None` when the block's source is
/// not its content under that prefix, so the edit would be a guess.
fn rewrite(file: &MdFile, block: &CodeBlock, expected: &str) -> Option<Edit> {
    let fence_line = file.index.line_range(file.text, block.line);
    let prefix: String = file.text[fence_line].chars().take(block.col - 1).collect();
    let reprefix = |s: &str| -> String {
        let lines: Vec<String> = s
            .lines()
            .map(|l| {
                if l.is_empty() {
                    prefix.trim_end().to_string()
                } else {
                    format!("{prefix}{l}")
                }
            })
            .collect();
        lines.join("\n") + "\n"
    };
    let range = block.content_range.clone();
    let current = &file.text[range.clone()];
    if block.content.is_empty() {
        return current.is_empty().then(|| Edit {
            range,
            replacement: reprefix(expected),
        });
    }
    // The first content line's prefix lies before the range.
    let written = reprefix(&block.content);
    let first_prefix = written.len() - written.trim_start_matches(prefix.as_str()).len();
    if written.get(first_prefix..) != Some(current) {
        return None;
    }
    let replacement = reprefix(expected);
    Some(Edit {
        range,
        replacement: replacement.get(first_prefix..)?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "import os\n\n    # --8<-- [start:app]\n    def app():\n        # --8<-- [start:inner]\n        return 1\n        # --8<-- [end:inner]\n    # --8<-- [end:app]\n// --8<-- [start:js]\nlet x = 1;  \n// --8<-- [end:js]\n";

    #[test]
    fn regions_drop_markers_and_indentation() {
        assert_eq!(
            extract(SOURCE, Some("app")).unwrap(),
            "def app():\n    return 1\n"
        );
        assert_eq!(extract(SOURCE, Some("inner")).unwrap(), "return 1\n");
        assert_eq!(extract(SOURCE, Some("js")).unwrap(), "let x = 1;  \n");
        assert_eq!(extract(SOURCE, Some("nope")), Err(RegionError::NoStart));
        assert_eq!(
            extract("<!-- --8<-- [start:a] -->\nx\n", Some("a")),
            Err(RegionError::NoEnd(1))
        );
        let whole = extract(SOURCE, None).unwrap();
        assert!(
            whole.starts_with("import os\n\n    def app():\n"),
            "{whole}"
        );
        assert!(!whole.contains("--8<--"));
    }

    #[test]
    fn comparison_ignores_trailing_whitespace_at_the_end_only() {
        assert!(same("a\nb\n\n", "a\nb"));
        assert!(same("a\r\nb\r\n", "a\nb\n"));
        assert!(!same("a \nb", "a\nb"));
    }
}
