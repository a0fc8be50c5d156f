//! The one list of files that must not ship: lint reports them (HYG001), pack leaves them out.

use super::glob::glob_match;

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

/// Whether `path` (relative to the skill root) must not ship, and why.
pub fn must_not_ship(path: &str) -> Option<MustNotShip> {
    let mut verdict = None;
    for &(pattern, what) in MUST_NOT_SHIP_PATTERNS {
        let (negated, glob) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        if glob_match(glob, path) {
            verdict = (!negated).then_some((pattern, what));
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
    fn folder_patterns_are_literal_names() {
        for (pattern, _) in MUST_NOT_SHIP_PATTERNS {
            if let Some(folder) = pattern.strip_suffix('/') {
                assert!(!folder.contains(['*', '?', '/']), "{pattern}");
            }
        }
    }
}
