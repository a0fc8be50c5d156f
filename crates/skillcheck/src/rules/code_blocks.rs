//! Code blocks: fences closed, and (opt-in) a language named and configuration blocks that
//! parse.

use crate::diag::Diagnostic;
use crate::engine::{Context, Sink};
use crate::registry::{COMMONMARK, FORMATS, declare_rules};

declare_rules! {
    CODE_BLOCK_INVALID = "CB001", "code-block-invalid", Error, opt_in, fixable: false,
        summary: "a fenced `toml`, `json` or `yaml` block does not parse (placeholders, templates, comments, JSON Lines and several documents allowed)",
        why: "Agents copy configuration examples verbatim; a broken example becomes a broken project.",
        example: "```json\n{\"a\": 1,}\n```",
        fix: "Fix the syntax at the reported line; mark pseudo-code with another language (`text`).",
        source: FORMATS;
    CODE_FENCE_NO_LANGUAGE = "CB002", "code-fence-no-language", Warning, opt_in, fixable: false,
        summary: "a fenced code block has no language",
        why: "The language tells the agent (and skillcheck) what the block is; `text` says it is plain text.",
        example: "```\npip install fastapi\n```",
        fix: "Add the language after the fence: ```bash, ```python, ```text.",
        source: COMMONMARK;
    UNCLOSED_FENCE = "CB003", "code-fence-unclosed", Warning, on, fixable: false,
        summary: "a fenced code block is never closed",
        why: "Everything after it, to the end of the file, becomes code: links and headings vanish.",
        example: "```python\nprint(1)\n(end of file)",
        fix: "Close the block with the same fence (``` or ~~~) on its own line.",
        source: COMMONMARK;
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    let parse_blocks = sink.enabled(&CODE_BLOCK_INVALID);
    for (path, file) in &ctx.files {
        for block in &file.doc.code_blocks {
            let snippet = file.source_line(block.line, block.col, 0);
            if block.lang.is_empty() {
                sink.emit(
                    &CODE_FENCE_NO_LANGUAGE,
                    Diagnostic::new(&CODE_FENCE_NO_LANGUAGE, *path, "code block has no language")
                        .at(block.line, block.col)
                        .source_line(snippet.clone())
                        .help("name the language after the fence (```bash, ```python, or ```text for plain text)"),
                );
            }
            if !block.closed {
                sink.emit(
                    &UNCLOSED_FENCE,
                    Diagnostic::new(
                        &UNCLOSED_FENCE,
                        *path,
                        "code block is never closed; the rest of the file is code",
                    )
                    .at(block.line, block.col)
                    .source_line(snippet)
                    .help("close it with the same fence on its own line"),
                );
            }
            if !parse_blocks {
                continue;
            }
            if let Some((line, col, message)) = parse_error(&block.lang, &block.content) {
                let file_line = block.content_line + line - 1;
                let file_col = col + block.col - 1;
                sink.emit(
                    &CODE_BLOCK_INVALID,
                    Diagnostic::new(
                        &CODE_BLOCK_INVALID,
                        *path,
                        format!("`{}` block does not parse: {message}", block.lang),
                    )
                    .at(file_line, file_col)
                    .source_line(file.source_line(file_line, file_col, 1))
                    .help("fix the syntax, or mark pseudo-code as ```text"),
                );
            }
        }
    }
}

/// The first syntax error of a block: 1-based line and column inside the block, and a message.
/// `None` when the block parses or its language is not checked.
pub fn parse_error(lang: &str, content: &str) -> Option<(usize, usize, String)> {
    if is_illustration(content) {
        return None;
    }
    match lang {
        "toml" => content.parse::<toml::Table>().err().map(|e| {
            let (line, col) = e
                .span()
                .map_or((1, 1), |s| crate::text::line_col(content, s.start));
            (line, col, e.message().trim().to_string())
        }),
        "json" | "jsonl" | "jsonc" | "json5" => json_error(content),
        "yaml" | "yml" => crate::parse::yaml::parse(content).err().map(|e| {
            // An error at the end of input points past the last line: show the last line.
            let last = content.lines().count().max(1);
            let line = e.pos.line.clamp(1, last);
            let col = if line < e.pos.line { 1 } else { e.pos.col };
            (line, col, e.message)
        }),
        _ => None,
    }
}

/// serde_json appends " at line X column Y"; the diagnostic has its own position.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Placeholders (`...`), template syntax (`{{ }}`, `{% %}`) and file-name comments heading
/// several files: an illustration of a file, not a file to parse.
fn is_illustration(content: &str) -> bool {
    let file_headers = content
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            (t.starts_with('#') || t.starts_with("//"))
                && t.trim_start_matches(['#', '/', ' '])
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.contains('.') && !w.ends_with('.'))
        })
        .count();
    content.contains("...")
        || content.contains('…')
        || content.contains("{{")
        || content.contains("{%")
        || file_headers >= 2
}

/// JSON, JSON with `//` comment lines, JSON Lines, or several documents one after another.
fn json_error(content: &str) -> Option<(usize, usize, String)> {
    let uncommented: String = content
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let stream =
        serde_json::Deserializer::from_str(&uncommented).into_iter::<serde::de::IgnoredAny>();
    for value in stream {
        if let Err(e) = value {
            return Some((
                e.line().max(1),
                e.column().max(1),
                strip_position(&e.to_string()),
            ));
        }
    }
    None
}
#[cfg(test)]
mod tests {
    use super::parse_error;

    #[test]
    fn positions_inside_blocks() {
        assert_eq!(parse_error("json", "{\"a\": 1}\n"), None);
        let (line, _, msg) = parse_error("json", "{\n  \"a\": 1,\n}\n").unwrap();
        assert_eq!(line, 3, "{msg}");
        let (line, col, _) = parse_error("toml", "a = 1\nb = \n").unwrap();
        assert_eq!((line, col), (2, 5));
        let (line, _, _) = parse_error("yaml", "a: 1\nb: [\n").unwrap();
        assert!(line >= 2);
        assert_eq!(parse_error("yaml", "a: 1\n---\nb: 2\n"), None);
        assert_eq!(parse_error("python", "def ("), None);
        // Illustrations and the JSON variants parse, or are not parsed.
        assert_eq!(parse_error("json", "{\"a\": 1, ...}\n"), None);
        assert_eq!(parse_error("json", "// config.json\n{\"a\": 1}\n"), None);
        assert_eq!(parse_error("json", "{\"a\": 1}\n{\"b\": 2}\n"), None);
        assert_eq!(parse_error("yaml", "image: {{ .Values.image }}\n"), None);
        assert_eq!(
            parse_error("toml", "# a.toml\nx = 1\n# b.toml\nx = 2\n"),
            None
        );
        assert!(parse_error("json", "{\"a\": 1}\n{\"b\": }\n").is_some());
    }
}
