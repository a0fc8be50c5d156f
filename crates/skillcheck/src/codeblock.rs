//! Parsing fenced `toml`, `json` and `yaml` blocks.

/// The first syntax error of a block: 1-based line and column inside the block, and a message.
/// `None` when the block parses or its language is not checked.
pub fn parse_error(lang: &str, content: &str) -> Option<(usize, usize, String)> {
    match lang {
        "toml" => content.parse::<toml::Table>().err().map(|e| {
            let (line, col) = e
                .span()
                .map_or((1, 1), |s| crate::config::line_col(content, s.start));
            (line, col, e.message().trim().to_string())
        }),
        "json" => serde_json::from_str::<serde::de::IgnoredAny>(content)
            .err()
            .map(|e| {
                (
                    e.line().max(1),
                    e.column().max(1),
                    strip_position(&e.to_string()),
                )
            }),
        "yaml" | "yml" => crate::yaml::parse(content).err().map(|e| {
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
    }
}
