//! Gitignore-style globs, for `[pack] exclude`, `.skillignore` and the must-not-ship list.

/// Gitignore-style matching of a `/`-separated path relative to the skill root.
///
/// `*` and `?` stay within one path component, `**` crosses folders. A pattern without `/`
/// (other than a trailing one) matches a name at any depth; a trailing `/` matches only
/// folders (and so everything under them); a leading `/` anchors at the root.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let dir_only = pattern.ends_with('/');
    let pattern = pattern.trim_end_matches('/');
    let anchored = pattern.starts_with('/') || pattern.contains('/');
    let pattern = pattern.trim_start_matches('/');
    if !anchored {
        // A name at any depth: each component on its own, the last one only for files.
        let names = path.split('/').count() - usize::from(dir_only);
        return path
            .split('/')
            .take(names)
            .any(|name| match_segments(pattern, name));
    }
    let components: Vec<&str> = path.split('/').collect();
    for end in 1..=components.len() {
        // A folder pattern matches only a proper prefix (a folder), never the file itself.
        if dir_only && end == components.len() {
            break;
        }
        let matched = if anchored {
            match_segments(pattern, &components[..end].join("/"))
        } else {
            match_segments(pattern, components[end - 1])
        };
        if matched {
            return true;
        }
    }
    false
}

/// Whether `text` matches `pattern` as a whole. A table over (pattern position, text
/// position), filled from the end, so the cost is `O(pattern × text)` whatever the pattern:
/// a `.skillignore` ships inside the skill being packed and must not be able to stall pack
/// with a backtracking blow-up such as `*a*a*a*a*a*a*ab`.
fn match_segments(pattern: &str, text: &str) -> bool {
    // Most patterns are a name, `*.ext`, `name.*` or `#*#`: answer those without the table.
    if !pattern.contains('?') {
        match pattern.split_once('*') {
            None => return pattern == text,
            Some((prefix, suffix)) if !suffix.contains('*') => {
                return text.len() >= prefix.len() + suffix.len()
                    && text.starts_with(prefix)
                    && text.ends_with(suffix)
                    && !text[prefix.len()..text.len() - suffix.len()].contains('/');
            }
            _ => {}
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let width = t.len() + 1;
    // matches[pi * width + ti]: does p[pi..] match t[ti..]?
    let mut matches = vec![false; (p.len() + 1) * width];
    matches[p.len() * width + t.len()] = true;
    for pi in (0..p.len()).rev() {
        let row = pi * width;
        if p[pi] == '*' && p.get(pi + 1) == Some(&'*') {
            // `**` (and a `/` right after it) spans folders; what follows starts at the
            // text's start, after a `/`, or anywhere when nothing follows.
            let rest = if p.get(pi + 2) == Some(&'/') {
                pi + 3
            } else {
                pi + 2
            };
            let rest_row = rest * width;
            let mut later_start = false;
            for ti in (0..=t.len()).rev() {
                matches[row + ti] = matches[rest_row + ti] || later_start;
                if ti > 0 && (t[ti - 1] == '/' || rest == p.len()) && matches[rest_row + ti] {
                    later_start = true;
                }
            }
            continue;
        }
        let next_row = (pi + 1) * width;
        for ti in (0..=t.len()).rev() {
            let here = t.get(ti).copied();
            matches[row + ti] = match p[pi] {
                '*' => {
                    matches[next_row + ti]
                        || (here.is_some_and(|c| c != '/') && matches[row + ti + 1])
                }
                '?' => here.is_some_and(|c| c != '/') && matches[next_row + ti + 1],
                c => here == Some(c) && matches[next_row + ti + 1],
            };
        }
    }
    matches[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The straightforward backtracking matcher: the specification the table must equal.
    fn reference_match(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') if p.get(1) == Some(&'*') => {
                let rest = &p[2..];
                let rest = rest.strip_prefix(&['/']).unwrap_or(rest);
                (0..=t.len()).any(|i| {
                    (i == 0 || t[i - 1] == '/' || rest.is_empty()) && reference_match(rest, &t[i..])
                })
            }
            Some('*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| reference_match(&p[1..], &t[i..])),
            Some('?') => t.first().is_some_and(|&c| c != '/') && reference_match(&p[1..], &t[1..]),
            Some(&c) => t.first() == Some(&c) && reference_match(&p[1..], &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn table_matcher_equals_the_backtracking_one(
            pattern in "[ab*?/]{0,8}",
            text in "[ab/]{0,10}",
        ) {
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            prop_assert_eq!(match_segments(&pattern, &text), reference_match(&p, &t));
        }
    }

    #[test]
    fn hostile_patterns_do_not_backtrack() {
        // Exponential for a backtracking matcher (hours at this size); a table scan here.
        let name = "a".repeat(200);
        let pattern = "*a".repeat(30) + "b";
        assert!(!glob_match(&pattern, &name));
        assert!(glob_match(&("*a".repeat(30) + "*"), &name));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.log", "a/b/x.log"));
        assert!(!glob_match("*.log", "a/b/x.logs"));
        assert!(glob_match("build/", "build/x/y"));
        assert!(!glob_match("build/", "build"));
        assert!(glob_match("/notes.md", "notes.md"));
        assert!(!glob_match("/notes.md", "a/notes.md"));
        assert!(glob_match("assets/**/*.tmp", "assets/a/b/c.tmp"));
        assert!(glob_match("assets/**/*.tmp", "assets/c.tmp"));
        assert!(glob_match("**/cache/", "x/cache/y"));
        assert!(glob_match("node_modules/", "a/node_modules/b.js"));
    }
}
