//! Frontmatter: arbitrary text between `---` lines, and as a whole SKILL.md; the YAML parser
//! on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(nodes) = skillcheck::parse::yaml::parse(text) {
        let mut dups = Vec::new();
        for node in &nodes {
            skillcheck::parse::yaml::duplicate_keys(node, &mut dups);
        }
    }
    let wrapped = format!("---\n{text}\n---\n# Title\n\nBody.\n");
    common::exercise(&common::skill(&[("SKILL.md", wrapped.as_bytes())]));
    common::exercise(&common::skill(&[("SKILL.md", data)]));
});
