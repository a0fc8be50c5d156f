//! The rules, one family per file. Each family declares its codes (`RULES`) and checks them
//! (`check`) from the shared [`Context`]; adding a rule touches its family file, a fixture
//! folder and nothing else.

use crate::engine::{Context, Sink};
use crate::registry::{self, Family, Rule};

pub mod checklist;
pub mod claude_ai;
pub mod claude_code;
pub mod code_blocks;
pub mod frontmatter;
pub mod hygiene;
pub mod links;
pub mod secrets;
pub mod size;
pub mod snippets;
pub mod structure;

macro_rules! families {
    ($( $module:ident: $prefix:literal, $title:literal; )*) => {
        /// Every family, in the order `skillcheck rules` and the README list them.
        pub static FAMILIES: &[Family] = &[$(Family {
            prefix: $prefix,
            title: $title,
            module: stringify!($module),
            rules: $module::RULES,
        }),*];
        const CHECKS: &[fn(&Context, &mut Sink)] = &[$($module::check),*];
    };
}

families! {
    frontmatter: "FM", "Frontmatter";
    claude_ai: "CAI", "claude.ai upload (target claude-ai)";
    claude_code: "CC", "Claude Code (target claude-code)";
    size: "SZ", "Size";
    links: "LNK", "Links and anchors";
    structure: "STR", "Structure";
    checklist: "CHK", "Checklist coverage";
    code_blocks: "CB", "Code blocks";
    snippets: "SN", "Snippet sync";
    hygiene: "HYG", "Hygiene";
    secrets: "SEC", "Security";
}

/// Runs every family's checks.
pub fn run(ctx: &Context, sink: &mut Sink) {
    for (family, check) in FAMILIES.iter().zip(CHECKS) {
        sink.enter(family);
        check(ctx, sink);
    }
}

pub fn all() -> impl Iterator<Item = &'static Rule> {
    registry::all(FAMILIES)
}

/// Finds a rule by code (`LNK003`) or name (`broken-anchor`), case-insensitively.
pub fn find(key: &str) -> Option<&'static Rule> {
    registry::find(FAMILIES, key)
}
