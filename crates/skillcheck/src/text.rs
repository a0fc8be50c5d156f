//! Small text helpers shared by the rules.

use std::borrow::Cow;

/// Levenshtein distance in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `target`, if it is close enough to be a likely typo.
pub fn nearest<'a>(target: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (target.chars().count() / 3).clamp(2, 6);
    candidates
        .into_iter()
        .map(|c| (edit_distance(target, c), c))
        .filter(|&(d, _)| d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Decodes `%XX` escapes; invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    // Nearly every link has nothing to decode: borrowed, not copied.
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && s.is_char_boundary(i + 3)
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// `to` relative to the folder `from_dir` (both relative to the skill root, `/`-separated).
pub fn relative_path(from_dir: &str, to: &str) -> String {
    let from: Vec<&str> = from_dir.split('/').filter(|s| !s.is_empty()).collect();
    let to_parts: Vec<&str> = to.split('/').collect();
    let common = from
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend(&to_parts[common..]);
    parts.join("/")
}

/// The folder of a `/`-separated path ("" for the root).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// Joins and normalises; `None` when `..` climbs above the root.
pub fn join_normalized(dir: &str, rel: &str) -> Option<String> {
    // Nearly always both are plain `a/b` paths: then the join is a concatenation.
    if is_plain(dir) && is_plain(rel) {
        return Some(match (dir.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => dir.to_string(),
            (false, false) => [dir, "/", rel].concat(),
        });
    }
    join_components(dir, rel)
}

/// [`join_normalized`] component by component.
fn join_components(dir: &str, rel: &str) -> Option<String> {
    // The joined components, `/`-separated, built in place: a `..` cuts the last one off.
    let mut out = String::with_capacity(dir.len() + rel.len() + 1);
    let push = |out: &mut String, comp: &str| {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(comp);
    };
    for comp in dir.split('/').filter(|s| !s.is_empty()) {
        push(&mut out, comp);
    }
    for comp in rel.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.is_empty() {
                    return None;
                }
                out.truncate(out.rfind('/').unwrap_or(0));
            }
            c => push(&mut out, c),
        }
    }
    Some(out)
}

/// Empty, or `/`-separated components none of which is empty, `.` or `..`.
fn is_plain(path: &str) -> bool {
    path.is_empty()
        || path
            .as_bytes()
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// Lowercase, Markdown formatting removed, whitespace collapsed (checklist matching).
pub fn normalize_item(s: &str) -> String {
    let stripped: String = s.chars().filter(|c| !matches!(c, '`' | '*')).collect();
    stripped
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// 1-based line and character column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn plain_joins_equal_the_component_walk(dir in "[a./]{0,8}", rel in "[ab./]{0,10}") {
            proptest::prop_assert_eq!(join_normalized(&dir, &rel), join_components(&dir, &rel));
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            nearest("referenses/api.md", ["references/api.md", "SKILL.md"]),
            Some("references/api.md")
        );
        assert_eq!(nearest("abc", ["xyz"]), None);
        assert_eq!(percent_decode("a%20b%zz%"), "a b%zz%");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
        assert_eq!(
            relative_path("references", "assets/x.txt"),
            "../assets/x.txt"
        );
        assert_eq!(relative_path("", "a/b.md"), "a/b.md");
        assert_eq!(
            join_normalized("references", "../assets/./x"),
            Some("assets/x".into())
        );
        assert_eq!(join_normalized("", "../x"), None);
        assert_eq!(
            normalize_item("  **POST**  `/agents/run`\n ok"),
            "post /agents/run ok"
        );
    }
}
