//! Markdown link, anchor, checklist and code block extraction: arbitrary text as a body, and
//! as a reference that the body links to, so anchors and relative paths resolve across files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skillcheck::parse::markdown::{LineIndex, parse};

#[path = "common.rs"]
mod common;

const FRONTMATTER: &str = "---\nname: fuzz-skill\ndescription: Fuzzes. Use when fuzzing.\n---\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let index = LineIndex::new(text);
    let doc = parse(text, &index);
    for link in &doc.links {
        let _ = index.line_col(text, link.range.start);
    }
    let skill_md = format!("{FRONTMATTER}{text}\n\n[ref](references/ref.md)\n");
    common::exercise(&common::skill(&[
        ("SKILL.md", skill_md.as_bytes()),
        ("references/ref.md", data),
        ("references/other.md", b"# Other\n\n## Setup\n"),
    ]));
});
