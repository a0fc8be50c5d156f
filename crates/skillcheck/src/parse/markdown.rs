//! One pass over a Markdown file: headings and their ids, anchors, links, code, task items.

use std::collections::HashSet;
use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

use super::slug::Slugger;

/// Byte offset → 1-based line and character column.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = Vec::with_capacity(text.len() / 32 + 1);
        starts.push(0);
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        LineIndex { starts }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }

    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let line = self.line(offset);
        let start = self.starts[line - 1];
        let end = offset.min(text.len());
        let col = text.get(start..end).map_or(1, |s| s.chars().count() + 1);
        (line, col)
    }

    /// Byte range of a 1-based line, without its line break.
    pub fn line_range(&self, text: &str, line: usize) -> Range<usize> {
        let start = self
            .starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(text.len());
        let end = self.starts.get(line).map_or(text.len(), |&e| e - 1);
        let end = if end > start && text.as_bytes().get(end - 1) == Some(&b'\r') {
            end - 1
        } else {
            end
        };
        start..end.max(start)
    }

    /// Lines of the index, counting the empty one after a final line break.
    pub fn line_count(&self) -> usize {
        self.starts.len()
    }

    /// Lines as an editor counts them: a final line break ends the last line.
    pub fn text_lines(&self, text: &str) -> usize {
        self.line_count() - usize::from(text.ends_with('\n'))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heading {
    pub id: String,
    pub text: String,
    pub level: u8,
    pub line: usize,
    /// Anything but headings follows before the next heading of the same or a higher level.
    pub has_content: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Inline,
    Image,
    /// `[label]: dest`
    Definition,
    /// `[text][label]`, `[label]`: checked through its definition.
    ReferenceUse,
    Autolink,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub dest: String,
    pub kind: LinkKind,
    /// Byte range of the whole construct in the file.
    pub range: Range<usize>,
    pub line: usize,
    pub col: usize,
}

/// A whitespace-separated word of inline code or of a code block, kept when it may be a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodePath {
    pub token: String,
    pub line: usize,
    /// Inline code (backticks) rather than a code block; only then is `col` exact.
    pub inline: bool,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskItem {
    /// Rendered text: formatting and link syntax removed.
    pub text: String,
    pub checked: bool,
    pub line: usize,
    pub col: usize,
    /// Indices into [`MarkdownDoc::links`].
    pub links: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBlock {
    /// First word of the info string, lowercased; empty when the fence has none.
    pub lang: String,
    pub content: String,
    pub line: usize,
    pub col: usize,
    /// 1-based file line of the first content line.
    pub content_line: usize,
    /// Byte range of the content in the file; equal to `content` unless the block sits in a
    /// block quote or a list, whose markers the content leaves out.
    pub content_range: Range<usize>,
    pub closed: bool,
}

#[derive(Debug, Clone, Default)]
pub struct MarkdownDoc {
    pub headings: Vec<Heading>,
    /// `id="..."` and `name="..."` in HTML.
    pub html_ids: HashSet<String>,
    pub links: Vec<Link>,
    pub code_paths: Vec<CodePath>,
    pub tasks: Vec<TaskItem>,
    pub code_blocks: Vec<CodeBlock>,
}

impl MarkdownDoc {
    pub fn has_anchor(&self, id: &str) -> bool {
        self.headings.iter().any(|h| h.id == id) || self.html_ids.contains(id)
    }
}

/// The values of `id=` and `name=` attributes in HTML: what the regex
/// `(?i)\s(?:id|name)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))` finds, one match after the
/// other, written out because compiling that regex cost more than parsing a small skill.
fn html_ids(html: &str) -> impl Iterator<Item = &str> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while let Some((offset, c)) = html[pos..].char_indices().find(|&(_, c)| c.is_whitespace()) {
            let at = pos + offset + c.len_utf8();
            if let Some((end, value)) = html_id_at(html, at) {
                pos = end;
                return Some(value);
            }
            pos = at;
        }
        pos = html.len();
        None
    })
}

/// After a whitespace character at `at`: `id` or `name`, `=`, and a value; returns where the
/// match ends and the value.
fn html_id_at(html: &str, at: usize) -> Option<(usize, &str)> {
    let rest = &html.as_bytes()[at..];
    let name = if rest.get(..2).is_some_and(|p| p.eq_ignore_ascii_case(b"id")) {
        2
    } else if rest
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"name"))
    {
        4
    } else {
        return None;
    };
    let after_name = &html[at + name..];
    let after_eq = after_name.trim_start().strip_prefix('=')?.trim_start();
    let start = html.len() - after_eq.len();
    match after_eq.chars().next()? {
        quote @ ('"' | '\'') => {
            let close = after_eq[1..].find(quote)?;
            Some((start + 1 + close + 1, &after_eq[1..1 + close]))
        }
        c if c.is_whitespace() || c == '>' => None,
        _ => {
            let len = after_eq
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '>'))
                .unwrap_or(after_eq.len());
            Some((start + len, &after_eq[..len]))
        }
    }
}

/// Where the Markdown body starts: after a leading `---` frontmatter block, if there is one.
pub fn body_start(text: &str) -> usize {
    let t = text.strip_prefix('\u{feff}').unwrap_or(text);
    let bom = text.len() - t.len();
    let first_end = match t.find('\n') {
        Some(i) => i,
        None => return bom,
    };
    if t[..first_end].trim_end() != "---" {
        return bom;
    }
    let mut pos = first_end + 1;
    for line in t[first_end + 1..].split_inclusive('\n') {
        pos += line.len();
        if line.trim_end() == "---" {
            return bom + pos;
        }
    }
    bom
}

fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
}

struct ItemBuilder {
    text: String,
    task: Option<(bool, usize)>,
    links: Vec<usize>,
}

/// The innermost list item, when it is a task: only tasks keep their text and links. Its
/// marker comes before any of its text, so nothing a task holds is missed.
fn task_item(items: &mut [ItemBuilder]) -> Option<&mut ItemBuilder> {
    items.last_mut().filter(|item| item.task.is_some())
}

/// Parses the Markdown body of `text` (skipping frontmatter) once.
pub fn parse(text: &str, index: &LineIndex) -> MarkdownDoc {
    let base = body_start(text);
    let body = &text[base..];
    let mut doc = MarkdownDoc::default();
    let parser = Parser::new_ext(body, options()).into_offset_iter();
    let mut defs: Vec<_> = parser
        .reference_definitions()
        .iter()
        .map(|(_, def)| (def.dest.to_string(), def.span.clone()))
        .collect();
    defs.sort_by_key(|(_, span)| span.start);
    for (dest, span) in defs {
        let range = span.start + base..span.end + base;
        let (line, col) = index.line_col(text, range.start);
        doc.links.push(Link {
            dest,
            kind: LinkKind::Definition,
            range,
            line,
            col,
        });
    }

    let mut slugger = Slugger::new();
    let mut heading: Option<(u8, usize, String)> = None;
    let mut open_sections: Vec<(usize, u8)> = Vec::new();
    let mut items: Vec<ItemBuilder> = Vec::new();
    let mut code: Option<CodeBlock> = None;

    for (event, range) in parser {
        let range = range.start + base..range.end + base;
        let in_heading = heading.is_some();
        let is_content = !in_heading
            && !matches!(
                event,
                Event::Start(Tag::Heading { .. }) | Event::End(_) | Event::SoftBreak
            );
        if is_content {
            for &(i, _) in &open_sections {
                doc.headings[i].has_content = true;
            }
        }
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                heading = Some((level as u8, range.start, String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, start, htext)) = heading.take() {
                    let id = slugger.next_id(&htext);
                    while open_sections.last().is_some_and(|&(_, l)| l >= level) {
                        open_sections.pop();
                    }
                    open_sections.push((doc.headings.len(), level));
                    doc.headings.push(Heading {
                        id,
                        text: htext,
                        level,
                        line: index.line(start),
                        has_content: false,
                    });
                }
            }
            Event::Text(t) => {
                if let Some((_, _, h)) = heading.as_mut() {
                    h.push_str(&t);
                } else if let Some(block) = code.as_mut() {
                    if block.content.is_empty() {
                        block.content_range = range.clone();
                    }
                    block.content_range.end = range.end;
                    block.content.push_str(&t);
                }
                if code.is_none()
                    && let Some(item) = task_item(&mut items)
                {
                    item.text.push_str(&t);
                }
            }
            Event::Code(t) => {
                if let Some((_, _, h)) = heading.as_mut() {
                    h.push_str(&t);
                }
                if let Some(item) = task_item(&mut items) {
                    item.text.push_str(&t);
                }
                let (line, col) = index.line_col(text, range.start);
                push_code_paths(&mut doc.code_paths, &t, line, Some(col));
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some(item) = task_item(&mut items) {
                    item.text.push(' ');
                }
                if let Some((_, _, h)) = heading.as_mut() {
                    h.push('\n');
                }
            }
            Event::Html(h) | Event::InlineHtml(h) => {
                for id in html_ids(&h) {
                    doc.html_ids.insert(id.to_string());
                }
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                ..
            })
            | Event::Start(Tag::Image {
                link_type,
                dest_url,
                ..
            }) if !matches!(link_type, LinkType::Email | LinkType::WikiLink { .. }) => {
                let kind = match link_type {
                    LinkType::Autolink => LinkKind::Autolink,
                    LinkType::Inline if body[range.start - base..].starts_with('!') => {
                        LinkKind::Image
                    }
                    LinkType::Inline => LinkKind::Inline,
                    _ => LinkKind::ReferenceUse,
                };
                let (line, col) = index.line_col(text, range.start);
                if let Some(item) = task_item(&mut items) {
                    item.links.push(doc.links.len());
                }
                doc.links.push(Link {
                    dest: dest_url.to_string(),
                    kind,
                    range,
                    line,
                    col,
                });
            }
            Event::Start(Tag::Item) => items.push(ItemBuilder {
                text: String::new(),
                task: None,
                links: Vec::new(),
            }),
            Event::TaskListMarker(checked) => {
                if let Some(item) = items.last_mut() {
                    item.task = Some((checked, range.start));
                }
            }
            Event::End(TagEnd::Item) => {
                if let Some(ItemBuilder {
                    text: item_text,
                    task: Some((checked, start)),
                    links,
                }) = items.pop()
                {
                    let (line, col) = index.line_col(text, start);
                    doc.tasks.push(TaskItem {
                        text: item_text.trim().to_string(),
                        checked,
                        line,
                        col,
                        links,
                    });
                }
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let (line, col) = index.line_col(text, range.start);
                code = Some(CodeBlock {
                    lang: info
                        .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
                        .next()
                        .unwrap_or("")
                        .to_lowercase(),
                    // The content is at most the block's source: one allocation.
                    content: String::with_capacity(range.len()),
                    line,
                    col,
                    content_line: line + 1,
                    content_range: {
                        let after_fence = index.line_range(text, line + 1).start;
                        after_fence..after_fence
                    },
                    closed: fence_closed(&text[range.clone()]),
                });
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some(block) = code.take() {
                    // Paths in a block are attributed to its first line: only reachability
                    // uses them, and it needs no finer position.
                    push_code_paths(
                        &mut doc.code_paths,
                        &block.content,
                        block.content_line,
                        None,
                    );
                    doc.code_blocks.push(block);
                }
            }
            _ => {}
        }
    }
    doc.tasks.sort_by_key(|t| (t.line, t.col));
    doc
}

/// Whether the source of a fenced block ends with a closing fence. Inside a block quote each
/// line carries the quote's `>` markers: they are not part of the fence.
fn fence_closed(source: &str) -> bool {
    // Only the first and the last line matter: they are borrowed, not copied.
    fn unquote(line: &str) -> &str {
        let mut rest = line.trim_start();
        while let Some(r) = rest.strip_prefix('>') {
            rest = r.trim_start();
        }
        rest
    }
    let mut lines = source.trim_end_matches(['\n', '\r']).lines().map(unquote);
    let Some(open) = lines.next() else {
        return false;
    };
    let open = open.trim_start();
    let Some(fence_char) = open.chars().next() else {
        return false;
    };
    let width = open.chars().take_while(|&c| c == fence_char).count();
    match lines.next_back() {
        Some(last) => {
            let last = last.trim();
            last.chars().take_while(|&c| c == fence_char).count() >= width
                && last.chars().all(|c| c == fence_char)
        }
        None => false,
    }
}

/// The bytes of a word [`push_code_paths`] keeps: ASCII letters and digits, `/._-@+%*`.
static PATH_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'/' | b'.' | b'_' | b'-' | b'@' | b'+' | b'%' | b'*');
        b += 1;
    }
    table
};

/// Keeps the words of code that may name a file or folder of the skill: relative paths
/// (`scripts/x.py`, `assets/tpl/`) and file names with an extension (`other.md`).
/// A word is a maximal run of path characters, so `python scripts/x.py:12` yields
/// `scripts/x.py`.
/// `col` is the inline code's column, `None` for a code block.
fn push_code_paths(out: &mut Vec<CodePath>, code: &str, line: usize, col: Option<usize>) {
    let bytes = code.as_bytes();
    let is_path_byte = |b: u8| PATH_BYTE[usize::from(b)];
    let mut i = 0;
    // Only words with a `/` or a `.` are kept: jump from one of those bytes to the next, then
    // widen to the word around it (the bytes before it in the word hold neither).
    while let Some(hit) = memchr::memchr2(b'/', b'.', &bytes[i..]).map(|off| i + off) {
        let mut start = hit;
        while start > i && is_path_byte(bytes[start - 1]) {
            start -= 1;
        }
        i = hit;
        let mut has_slash = false;
        let mut last_dot = None;
        while i < bytes.len() && is_path_byte(bytes[i]) {
            match bytes[i] {
                b'/' => has_slash = true,
                b'.' => last_dot = Some(i),
                _ => {}
            }
            i += 1;
        }
        // A URL (`https://...`) is not a path of the skill.
        if bytes.get(i) == Some(&b':') && bytes.get(i + 1) == Some(&b'/') {
            continue;
        }
        let word = code[start..i].trim_end_matches('.');
        let end = start + word.len();
        let has_ext = last_dot.is_some_and(|d| d > start && d < end && end - d <= 9);
        if word.len() >= 3 && word.len() <= 200 && !word.starts_with('-') && (has_slash || has_ext)
        {
            out.push(CodePath {
                token: word.to_string(),
                line,
                inline: col.is_some(),
                // The backtick, then the word's offset inside the code.
                col: col.map_or(0, |c| c + 1 + code[..start].chars().count()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> MarkdownDoc {
        parse(text, &LineIndex::new(text))
    }

    #[test]
    fn headings_ids_and_content() {
        let d = doc(
            "---\nname: x\n---\n# Title\n\n## Empty\n## Use `create_app()`\ntext\n\nSetext\n------\n",
        );
        let ids: Vec<_> = d.headings.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["title", "empty", "use-create_app", "setext"]);
        let content: Vec<_> = d.headings.iter().map(|h| h.has_content).collect();
        assert_eq!(content, [true, false, true, false]);
        assert_eq!(d.headings[0].line, 4);
    }

    #[test]
    fn links_skip_code_and_find_definitions() {
        let d = doc(
            "[a](x.md) `[b](y.md)`\n\n```md\n[c](z.md)\n```\n\n[d]: w.md#frag\n![i](img.png)\n",
        );
        let dests: Vec<_> = d.links.iter().map(|l| (l.dest.as_str(), l.kind)).collect();
        assert_eq!(
            dests,
            [
                ("w.md#frag", LinkKind::Definition),
                ("x.md", LinkKind::Inline),
                ("img.png", LinkKind::Image)
            ]
        );
        assert_eq!(d.links[0].line, 7);
    }

    #[test]
    fn tasks_have_text_and_links() {
        let d = doc("- [ ] **Rate** limiting -> [mw](m.md#rate)\n  - [x] nested `code`\n- plain\n");
        assert_eq!(d.tasks.len(), 2);
        assert_eq!(d.tasks[0].text, "Rate limiting -> mw");
        assert_eq!(d.tasks[0].links.len(), 1);
        assert_eq!(d.tasks[1].text, "nested code");
        assert!(d.tasks[1].checked);
    }

    #[test]
    fn fences_languages_and_closing() {
        let d = doc("```\na\n```\n\n~~~toml title\nx = 1\n~~~\n\n````json\n{}\n");
        let blocks: Vec<_> = d
            .code_blocks
            .iter()
            .map(|b| (b.lang.as_str(), b.closed, b.content_line))
            .collect();
        assert_eq!(
            blocks,
            [("", true, 2), ("toml", true, 6), ("json", false, 10)]
        );
    }

    /// The byte-by-byte scan `push_code_paths` replaced, as an oracle.
    fn code_paths_by_bytes(code: &str) -> Vec<(String, usize)> {
        let bytes = code.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if !PATH_BYTE[usize::from(bytes[i])] {
                i += 1;
                continue;
            }
            let start = i;
            let (mut has_slash, mut last_dot) = (false, None);
            while i < bytes.len() && PATH_BYTE[usize::from(bytes[i])] {
                match bytes[i] {
                    b'/' => has_slash = true,
                    b'.' => last_dot = Some(i),
                    _ => {}
                }
                i += 1;
            }
            if (!has_slash && last_dot.is_none())
                || (bytes.get(i) == Some(&b':') && bytes.get(i + 1) == Some(&b'/'))
            {
                continue;
            }
            let word = code[start..i].trim_end_matches('.');
            let end = start + word.len();
            let has_ext = last_dot.is_some_and(|d| d > start && d < end && end - d <= 9);
            if word.len() >= 3
                && word.len() <= 200
                && !word.starts_with('-')
                && (has_slash || has_ext)
            {
                out.push((word.to_string(), 3 + code[..start].chars().count()));
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn code_paths_match_the_byte_scan(code in r"[a-z./:_\- é*%@+]{0,60}") {
            let mut found = Vec::new();
            push_code_paths(&mut found, &code, 1, Some(2));
            let found: Vec<_> = found.into_iter().map(|c| (c.token, c.col)).collect();
            proptest::prop_assert_eq!(found, code_paths_by_bytes(&code));
        }
    }

    proptest::proptest! {
        #[test]
        fn html_ids_match_the_regex(html in "( |\t|\n|\u{a0}|=|\"|'|>|<a|id|ID|Name|nAmE|x|é|-){0,24}") {
            let regex = regex::Regex::new(
                r#"(?i)\s(?:id|name)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))"#,
            )
            .expect("static regex");
            let by_regex: Vec<&str> = regex
                .captures_iter(&html)
                .filter_map(|cap| cap.get(1).or(cap.get(2)).or(cap.get(3)))
                .map(|m| m.as_str())
                .collect();
            proptest::prop_assert_eq!(html_ids(&html).collect::<Vec<_>>(), by_regex);
        }
    }

    #[test]
    fn html_ids_become_anchors() {
        let d = doc("<a id=\"x-1\"></a>\n\nText <span name='y'>s</span>\n");
        assert!(d.has_anchor("x-1") && d.has_anchor("y"));
    }
}
