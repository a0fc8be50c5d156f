//! Between the engine's places (byte offsets, 1-based lines and character columns) and LSP
//! positions (0-based lines, UTF-16 code units, the protocol's default encoding and the only
//! one every client speaks).
//!
//! Lines end at `\n` (a `\r` before it is not part of the line), as the engine counts them.
//! Positions from the client are clamped, never trusted: a line past the end means the end of
//! the text, a character past the end of its line means the line's end, and a character in
//! the middle of a surrogate pair means the start of that character.

use std::ops::Range as Bytes;

use lsp_types::{Position, Range};

use crate::diag::Diagnostic;
use crate::parse::markdown::LineIndex;

/// A text with its line starts, for converting many places.
pub struct Lines<'a> {
    text: &'a str,
    index: LineIndex,
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Self {
        Lines {
            text,
            index: LineIndex::new(text),
        }
    }

    /// The byte range of a 1-based line without its line break; `None` past the last line.
    fn line(&self, line: usize) -> Option<Bytes<usize>> {
        (line >= 1 && line <= self.index.line_count())
            .then(|| self.index.line_range(self.text, line))
    }

    /// The LSP position of a byte offset (clamped to the text and to a character boundary).
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.index.line(offset);
        let range = self.line(line).unwrap_or(offset..offset);
        let end = offset.clamp(range.start, range.end);
        Position::new(
            u32_of(line - 1),
            u32_of(utf16_len(&self.text[range.start..end])),
        )
    }

    /// The byte offset of an LSP position, clamped as the module says.
    pub fn offset(&self, position: Position) -> usize {
        let Some(range) = self.line(position.line as usize + 1) else {
            return self.text.len();
        };
        let wanted = position.character as usize;
        let mut units = 0;
        for (i, c) in self.text[range.clone()].char_indices() {
            units += c.len_utf16();
            if units > wanted {
                return range.start + i;
            }
        }
        range.end
    }

    pub fn range(&self, bytes: &Bytes<usize>) -> Range {
        Range::new(self.position(bytes.start), self.position(bytes.end))
    }

    /// Where a diagnostic points, as a range. Its start is the diagnostic's line and
    /// character column; its end is the end of the highlighted source when the diagnostic
    /// carries the line as it is in the text, the end of the word when the line was masked
    /// (secrets), and the end of the line otherwise. Whole-file findings (line 0) sit at the
    /// file's start.
    pub fn diagnostic_range(&self, d: &Diagnostic) -> Range {
        let Some(line) = (d.line > 0).then(|| self.line(d.line)).flatten() else {
            let at = if d.line == 0 { 0 } else { self.text.len() };
            let p = self.position(at);
            return Range::new(p, p);
        };
        let text = &self.text[line.clone()];
        let start = text
            .char_indices()
            .nth(d.col.saturating_sub(1))
            .map_or(text.len(), |(i, _)| i);
        let end = match &d.source_line {
            Some(shown) if shown.text == text => shown.highlight.end.clamp(start, text.len()),
            Some(_) => text[start..]
                .find(char::is_whitespace)
                .map_or(text.len(), |n| start + n),
            None => text.len(),
        };
        // An empty highlight still marks one character, as the terminal output does.
        let end = if end == start {
            text[start..]
                .chars()
                .next()
                .map_or(end, |c| end + c.len_utf8())
        } else {
            end
        };
        self.range(&(line.start + start..line.start + end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::SourceLine;
    use crate::rules::links::BROKEN_ANCHOR;

    #[test]
    fn offsets_and_positions_count_utf16_units() {
        // "é" is 2 bytes and 1 unit; "😀" is 4 bytes and 2 units (a surrogate pair).
        let text = "ab\r\né😀x\nlast";
        let lines = Lines::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(lines.position(x), Position::new(1, 3));
        assert_eq!(lines.offset(Position::new(1, 3)), x);
        assert_eq!(lines.position(text.len()), Position::new(2, 4));
        // Inside the surrogate pair: the start of the emoji.
        assert_eq!(lines.offset(Position::new(1, 2)), text.find('😀').unwrap());
        // Past the end of a line (the `\r` is not in it), past the last line.
        assert_eq!(lines.offset(Position::new(0, 99)), 2);
        assert_eq!(lines.offset(Position::new(9, 0)), text.len());
        // A byte offset inside a character rounds down to it.
        assert_eq!(lines.position(x - 1), Position::new(1, 1));
        assert_eq!(lines.position(usize::MAX), Position::new(2, 4));
    }

    #[test]
    fn diagnostic_ranges_follow_the_highlight() {
        let text = "# T\n\nVoir «😀» [x](a.md#Nope) fin\n";
        let lines = Lines::new(text);
        let line = "Voir «😀» [x](a.md#Nope) fin";
        let col = line[..line.find('[').unwrap()].chars().count() + 1;
        let start = line.find('[').unwrap();
        let end = line.find(" fin").unwrap();
        let d = Diagnostic::new(&BROKEN_ANCHOR, "SKILL.md", "m")
            .at(3, col)
            .source_line(Some(SourceLine {
                text: line.into(),
                highlight: start..end,
            }));
        // `[` is the 10th character but the 11th UTF-16 unit (the emoji takes two).
        assert_eq!(col, 10);
        assert_eq!(
            lines.diagnostic_range(&d),
            Range::new(Position::new(2, 10), Position::new(2, 24))
        );
        let masked = d.clone().source_line(Some(SourceLine {
            text: "masked".into(),
            highlight: 0..1,
        }));
        assert_eq!(lines.diagnostic_range(&masked).end, Position::new(2, 24));
        let whole_file = Diagnostic::new(&BROKEN_ANCHOR, "SKILL.md", "m");
        assert_eq!(lines.diagnostic_range(&whole_file), Range::default());
        let past_end = whole_file.clone().at(40, 1);
        assert_eq!(lines.diagnostic_range(&past_end).start, Position::new(3, 0));
    }
}
