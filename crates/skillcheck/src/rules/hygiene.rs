//! Hygiene: files that must not ship (the list pack applies too).

use std::collections::BTreeMap;

use crate::diag::Diagnostic;
use crate::engine::{Context, Sink};
use crate::registry::{GITIGNORE, declare_rules};
use crate::source::must_not_ship;

declare_rules! {
    UNWANTED_FILE = "HYG001", "unwanted-file", Warning, on, fixable: false,
        summary: "a file that must not ship (`.env`, `.DS_Store`, `__pycache__`, `*.pyc`, editor swap files)",
        why: "Such files leak local state or secrets and bloat packages.",
        example: "scripts/__pycache__/tool.cpython-311.pyc",
        fix: "Delete the file and ignore it in version control.",
        source: GITIGNORE;
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    // A folder (a cache, an environment) is reported once, not once per file inside it.
    let mut found = BTreeMap::new();
    for file in &ctx.source.files {
        if let Some(m) = must_not_ship(&file.path) {
            found.entry(m.path.clone()).or_insert(m);
        }
    }
    for (path, m) in found {
        let help = if m.pattern == "__pycache__/" {
            "delete the folder; set PYTHONDONTWRITEBYTECODE=1 when running the scripts"
        } else if m.pattern.ends_with('/') {
            "delete the folder; keep tool caches and environments outside the skill (or ignore them in version control)"
        } else {
            "delete it (and ignore it in version control); `skillcheck pack` leaves it out"
        };
        sink.emit(
            &UNWANTED_FILE,
            Diagnostic::new(
                &UNWANTED_FILE,
                path,
                format!("{} must not ship with the skill", m.what),
            )
            .help(help),
        );
    }
}
