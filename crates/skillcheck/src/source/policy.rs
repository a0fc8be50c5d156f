//! The one list of files that must not ship: lint reports them (HYG001), pack leaves them out.

/// Gitignore-style patterns in order, the last match deciding (`!` re-includes), each with
/// what the file is. Folder patterns are literal names, so the folder can be named.
const MUST_NOT_SHIP_PATTERNS: &[(&str, &str)] = &[
    ("*.pyc", "Python bytecode"),
    ("*.pyo", "Python bytecode"),
    (".DS_Store", "an operating-system metadata file"),
    ("Thumbs.db", "an operating-system metadata file"),
    ("desktop.ini", "an operating-system metadata file"),
    ("*.swp", "an editor swap or backup file"),
    ("*.swo", "an editor swap or backup file"),
    ("*~", "an editor swap or backup file"),
    (".#*", "an editor swap or backup file"),
    ("#*#", "an editor swap or backup file"),
    (".env", "an environment file (may hold secrets)"),
    (".env.*", "an environment file (may hold secrets)"),
    // Templates document the variables and hold no values: they ship.
    ("!.env.example", ""),
    ("!.env.sample", ""),
    ("!.env.template", ""),
    ("!.env.dist", ""),
    ("!.env.defaults", ""),
    // Last, so that a file inside one is reported through its folder, once.
    ("__pycache__/", "a Python bytecode cache"),
    (".mypy_cache/", "a mypy cache"),
    (".ruff_cache/", "a ruff cache"),
    (".pytest_cache/", "a pytest cache"),
    (".ipynb_checkpoints/", "a Jupyter checkpoints folder"),
    (".tox/", "a tox environments folder"),
    (".venv/", "a virtual environment"),
    ("node_modules/", "a node_modules folder"),
];

/// Never packed, and not a defect either: version control and skillcheck's own files.
pub const NEVER_PACKED: &[&str] = &[".git/", ".hg/", ".svn/", "skillcheck.toml", ".skillignore"];

/// A file that must not ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MustNotShip {
    pub pattern: &'static str,
    pub what: &'static str,
    /// The file, or for a folder pattern the folder that holds it.
    pub path: String,
}

/// The patterns pack excludes by default, in order (`!` kept).
pub fn default_excludes() -> impl Iterator<Item = &'static str> {
    NEVER_PACKED
        .iter()
        .copied()
        .chain(MUST_NOT_SHIP_PATTERNS.iter().map(|(p, _)| *p))
}

/// Every must-not-ship pattern is one name matched at any depth (`*` at most once, no `?`,
/// no `/` but a folder's trailing one), so a path's names are read once and each compared
/// with a prefix and a suffix, instead of running the general glob matcher 29 times per file
/// (lint asks this of every file three times).
fn name_matches(glob: &str, name: &str) -> bool {
    match glob.split_once('*') {
        None => glob == name,
        Some((prefix, suffix)) => {
            name.len() >= prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        }
    }
}

/// Whether `path` (relative to the skill root) must not ship, and why.
pub fn must_not_ship(path: &str) -> Option<MustNotShip> {
    // Bit i: pattern i matched some name of the path (a folder pattern, a folder's name).
    let mut matched = 0u64;
    let mut names = path.split('/').peekable();
    while let Some(name) = names.next() {
        let is_folder = names.peek().is_some();
        for (i, &(pattern, _)) in MUST_NOT_SHIP_PATTERNS.iter().enumerate() {
            let glob = pattern.strip_prefix('!').unwrap_or(pattern);
            let (glob, folder_only) = match glob.strip_suffix('/') {
                Some(folder) => (folder, true),
                None => (glob, false),
            };
            if (is_folder || !folder_only) && name_matches(glob, name) {
                matched |= 1 << i;
            }
        }
    }
    // Gitignore order: the last matching pattern decides, `!` re-includes.
    let mut verdict = None;
    for (i, &(pattern, what)) in MUST_NOT_SHIP_PATTERNS.iter().enumerate() {
        if matched & (1 << i) != 0 {
            verdict = (!pattern.starts_with('!')).then_some((pattern, what));
        }
    }
    let (pattern, what) = verdict?;
    let path = match pattern.strip_suffix('/') {
        Some(folder) => {
            let mut end = 0;
            for component in path.split('/') {
                end += component.len();
                if component == folder {
                    break;
                }
                end += 1;
            }
            path[..end].to_string()
        }
        None => path.to_string(),
    };
    Some(MustNotShip {
        pattern,
        what,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_files_and_their_folders() {
        let at = |p: &str| must_not_ship(p).map(|m| m.path);
        assert_eq!(at("a/.env"), Some("a/.env".into()));
        assert_eq!(at("a/.env.local"), Some("a/.env.local".into()));
        assert_eq!(at("assets/tpl/.env.example"), None);
        assert_eq!(at(".DS_Store"), Some(".DS_Store".into()));
        assert_eq!(at("x.py.swp"), Some("x.py.swp".into()));
        assert_eq!(at("notes.md"), None);
        assert_eq!(
            at("assets/t/.mypy_cache/3.11/x.db"),
            Some("assets/t/.mypy_cache".into())
        );
        assert_eq!(at("scripts/.tox/py/x"), Some("scripts/.tox".into()));
        assert_eq!(at("a/__pycache__/m.pyc"), Some("a/__pycache__".into()));
        assert_eq!(at("a/m.py"), None);
    }

    #[test]
    fn every_pattern_is_one_name_and_matches_as_the_glob_matcher_does() {
        assert!(
            MUST_NOT_SHIP_PATTERNS.len() <= 64,
            "the matched set is a u64"
        );
        for (pattern, _) in MUST_NOT_SHIP_PATTERNS {
            let glob = pattern.trim_start_matches('!').trim_end_matches('/');
            assert!(!glob.contains(['?', '/']), "{pattern}");
            assert!(glob.matches('*').count() <= 1, "{pattern}");
        }
        let paths = [
            "a/.env",
            ".env.local",
            "x/.env.example",
            "b/#x#",
            "#",
            "##",
            "a/.#x",
            "x~",
            "~",
            "a.pyc/b.md",
            "__pycache__",
            "a/__pycache__",
            "a/__pycache__/m.pyc",
            "node_modules/x",
            "a/b/.venv/lib/x.py",
            ".tox",
            "Thumbs.db/x",
            "a/desktop.ini",
            "m.pyo",
            "notes.md",
        ];
        for path in paths {
            let mut expected = None;
            for &(pattern, what) in MUST_NOT_SHIP_PATTERNS {
                let glob = pattern.strip_prefix('!').unwrap_or(pattern);
                if super::super::glob::glob_match(glob, path) {
                    expected = (!pattern.starts_with('!')).then_some((pattern, what));
                }
            }
            let got = must_not_ship(path).map(|m| (m.pattern, m.what));
            assert_eq!(got, expected, "{path}");
        }
    }

    #[test]
    fn folder_patterns_are_literal_names() {
        for (pattern, _) in MUST_NOT_SHIP_PATTERNS {
            if let Some(folder) = pattern.strip_suffix('/') {
                assert!(!folder.contains(['*', '?', '/']), "{pattern}");
            }
        }
    }
}
