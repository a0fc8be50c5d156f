//! Size: the SKILL.md body's lines and tokens, and tables of contents in long files.

use crate::diag::{Diagnostic, Edit};
use crate::engine::{Context, MdFile, Sink};
use crate::parse::markdown::body_start;
use crate::registry::{BEST, declare_rules};

declare_rules! {
    BODY_TOO_LONG = "SZ001", "body-too-long", Error, on, fixable: false,
        summary: "the SKILL.md body is longer than the limit (500 lines by default)",
        why: "SKILL.md is loaded whole into the agent's context; long bodies cost tokens on every use. Move details into references/ files that load on demand.",
        example: "a 900-line SKILL.md",
        fix: "Move sections into references/*.md and link them; or raise `[lint] max_body_lines`.",
        source: BEST;
    REFERENCE_NO_TOC = "SZ002", "reference-missing-toc", Warning, opt_in, fixable: true,
        summary: "a Markdown file over 100 lines has no table of contents near the top",
        why: "Agents often read only the first lines of a long file; a table of contents lets them jump to the section they need.",
        example: "references/api.md: 300 lines, no links to its own headings near the top",
        fix: "Add a `## Contents` list linking the file's `##` headings after its title (`--fix` does it).",
        source: BEST;
    BODY_TOO_MANY_TOKENS = "SZ003", "body-too-many-tokens", Warning, on, fixable: false,
        summary: "the SKILL.md body is estimated at over 5,000 tokens",
        why: "The body is loaded whole when the skill triggers; keep it lean and move detail into references.",
        example: "a SKILL.md with long code listings",
        fix: "Move long listings into references/ or assets/; or raise `[lint] max_body_tokens`.",
        source: BEST;
}

fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    if let Some(file) = ctx.skill_md() {
        body(ctx, file, sink);
    }
    for (path, file) in &ctx.files {
        toc(ctx, path, file, sink);
    }
}

fn body(ctx: &Context, file: &MdFile, sink: &mut Sink) {
    let limits = ctx.settings.limits;
    let start = body_start(file.text);
    let body = &file.text[start..];
    let first_line = file.index.line(start);
    let lines = if body.is_empty() {
        0
    } else {
        file.index.text_lines(file.text) - first_line + 1
    };
    sink.stats.body_lines = lines;
    sink.stats.body_tokens = estimate_tokens(body);
    sink.stats.metadata_tokens = estimate_tokens(&file.text[..start]);
    if lines > limits.max_body_lines {
        let d = Diagnostic::new(
            &BODY_TOO_LONG,
            "SKILL.md",
            format!(
                "the body is {lines} lines, over the limit of {}",
                limits.max_body_lines
            ),
        )
        .at(first_line + limits.max_body_lines, 1)
        .help("move detail into references/*.md and link it");
        sink.emit(&BODY_TOO_LONG, d);
    }
    let tokens = sink.stats.body_tokens;
    if tokens > limits.max_body_tokens {
        let d = Diagnostic::new(
            &BODY_TOO_MANY_TOKENS,
            "SKILL.md",
            format!(
                "the body is about {tokens} tokens, over {}",
                limits.max_body_tokens
            ),
        )
        .help("move long sections and listings into references/ or assets/");
        sink.emit(&BODY_TOO_MANY_TOKENS, d);
    }
}

fn has_toc(file: &MdFile) -> bool {
    let window = file.doc.headings.first().map_or(1, |h| h.line) + 50;
    let self_links = file
        .doc
        .links
        .iter()
        .filter(|l| l.line <= window && l.dest.starts_with('#') && l.dest.len() > 1)
        .count();
    let toc_heading = file.doc.headings.iter().any(|h| {
        let t = h.text.to_lowercase();
        h.line <= window && (t.contains("contents") || t == "toc" || t.contains("on this page"))
    });
    self_links >= 2 || toc_heading
}

fn toc(ctx: &Context, path: &str, file: &MdFile, sink: &mut Sink) {
    if path == "SKILL.md" || path.starts_with("assets/") {
        return;
    }
    let lines = file.index.text_lines(file.text);
    if lines <= ctx.settings.limits.toc_min_lines || has_toc(file) {
        return;
    }
    let mut d = Diagnostic::new(
        &REFERENCE_NO_TOC,
        path,
        format!("{lines} lines and no table of contents near the top"),
    )
    .at(1, 1)
    .help("add a `## Contents` list of links to the `##` sections after the title");
    let sections: Vec<_> = file.doc.headings.iter().filter(|h| h.level == 2).collect();
    if sections.len() >= 2 {
        let mut toc = String::from("## Contents\n\n");
        for h in &sections {
            let label = h.text.replace(['[', ']'], "");
            toc.push_str(&format!("- [{label}](#{})\n", h.id));
        }
        toc.push('\n');
        let at = file.index.line_range(file.text, sections[0].line).start;
        d = d.fix(Edit {
            range: at..at,
            replacement: toc,
        });
    }
    sink.emit(&REFERENCE_NO_TOC, d);
}
