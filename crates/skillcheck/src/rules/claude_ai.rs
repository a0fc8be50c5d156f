//! claude.ai upload rules (target claude-ai): reserved names, one SKILL.md, no plugin
//! folder, at most 200 files and 30 MB, portable paths.

use crate::diag::Diagnostic;
use crate::engine::{Context, Sink};
use crate::parse::yaml::ScalarKind;
use crate::registry::{CLAUDE_AI, declare_rules};
use crate::settings::Target;
use crate::source::bundle;

const MAX_UPLOAD_FILES: usize = 200;
const MAX_UPLOAD_BYTES: u64 = 30 * 1000 * 1000;

declare_rules! {
    RESERVED_NAME = "CAI001", "name-reserved-word", Error, on, fixable: false,
        summary: "the name contains a reserved word (`anthropic`, `claude`)",
        why: "claude.ai refuses uploads whose name contains a reserved word.",
        example: "name: claude-helper",
        fix: "Choose a name without `anthropic` or `claude`.",
        source: CLAUDE_AI;
    UPLOAD_LAYOUT = "CAI002", "upload-layout", Error, on, fixable: false,
        summary: "the skill does not have exactly one SKILL.md, at `<name>/SKILL.md`",
        why: "claude.ai accepts a zip whose single top folder holds SKILL.md; nested SKILL.md files are rejected.",
        example: "my-skill/SKILL.md and my-skill/sub/SKILL.md",
        fix: "Keep one SKILL.md at the top of the skill; rename or remove the others.",
        source: CLAUDE_AI;
    CLAUDE_PLUGIN_DIR = "CAI003", "upload-plugin-folder", Error, on, fixable: false,
        summary: "the skill contains a `.claude-plugin/` folder",
        why: "A plugin manifest is not a skill; claude.ai rejects uploads that contain one.",
        example: "my-skill/.claude-plugin/plugin.json",
        fix: "Remove `.claude-plugin/` from the skill (publish plugins separately).",
        source: CLAUDE_AI;
    TOO_MANY_FILES = "CAI004", "upload-too-many-files", Error, on, fixable: false,
        summary: "more than 200 files",
        why: "claude.ai rejects uploads of more than 200 files.",
        example: "a skill with 250 template files",
        fix: "Remove files, or generate them from fewer templates, or bundle large folders into one file each for this target: `[pack.targets.claude-ai] bundle = [\"assets/templates\"]` in skillcheck.toml (see `skillcheck pack`).",
        source: CLAUDE_AI;
    TOO_LARGE = "CAI005", "upload-too-large", Error, on, fixable: false,
        summary: "more than 30 MB uncompressed",
        why: "claude.ai rejects uploads over 30 MB uncompressed.",
        example: "a skill with a 40 MB dataset in assets/",
        fix: "Remove large files or fetch them at run time.",
        source: CLAUDE_AI;
    INVALID_PATH = "CAI006", "upload-invalid-path", Error, on, fixable: false,
        summary: "a path contains a backslash or a character that is invalid in file names",
        why: "claude.ai rejects such paths; they also break on Windows.",
        example: "assets\\template.txt, notes?.md",
        fix: "Rename the file using letters, digits, `-`, `_`, `.` and `/` folders.",
        source: CLAUDE_AI;
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    if ctx.settings.target != Target::ClaudeAi {
        return;
    }
    reserved_name(ctx, sink);
    upload_rules(ctx, sink);
}

fn reserved_name(ctx: &Context, sink: &mut Sink) {
    let (Some(file), Some(value)) = (
        ctx.skill_md(),
        ctx.frontmatter.as_ref().and_then(|f| f.get("name")),
    ) else {
        return;
    };
    let (Some(name), Some(ScalarKind::Str)) = (value.as_str(), value.scalar_kind()) else {
        return;
    };
    let lower = name.to_lowercase();
    let Some(word) = ["anthropic", "claude"]
        .into_iter()
        .find(|w| lower.contains(w))
    else {
        return;
    };
    // YAML lines count from the line after the opening `---`.
    let pos = value.pos();
    let line = pos.line + 1;
    sink.emit(
        &RESERVED_NAME,
        Diagnostic::new(
            &RESERVED_NAME,
            "SKILL.md",
            format!("`name` contains the reserved word `{word}`"),
        )
        .at(line, pos.col)
        .source_line(file.source_line(line, pos.col, name.chars().count().max(1)))
        .help("claude.ai rejects it: choose another name"),
    );
}

fn upload_rules(ctx: &Context, sink: &mut Sink) {
    let shipped: Vec<_> = ctx
        .source
        .files
        .iter()
        .filter(|f| f.path != crate::settings::CONFIG_FILE)
        .cloned()
        .collect();
    // Bundled folders ship as one file each: count what the upload holds.
    let (count, bytes) = bundle::shipped_shape(&shipped, ctx.settings.bundles);
    if count > MAX_UPLOAD_FILES {
        let bundled = if ctx.settings.bundles.is_empty() {
            String::new()
        } else {
            " (bundled folders counted as one file each)".to_owned()
        };
        sink.emit(
            &TOO_MANY_FILES,
            Diagnostic::new(
                &TOO_MANY_FILES,
                "",
                format!("{count} files{bundled}, over claude.ai's limit of {MAX_UPLOAD_FILES}"),
            ),
        );
    }
    if bytes > MAX_UPLOAD_BYTES {
        sink.emit(
            &TOO_LARGE,
            Diagnostic::new(
                &TOO_LARGE,
                "",
                format!("{bytes} bytes uncompressed, over claude.ai's limit of 30 MB"),
            ),
        );
    }
    for f in &shipped {
        if f.path != "SKILL.md" && f.path.rsplit('/').next() == Some("SKILL.md") {
            sink.emit(
                &UPLOAD_LAYOUT,
                Diagnostic::new(
                    &UPLOAD_LAYOUT,
                    &f.path,
                    "a second SKILL.md below the skill root",
                )
                .help(
                    "claude.ai accepts exactly one SKILL.md, at `<name>/SKILL.md`: rename this one",
                ),
            );
        }
        if f.path.starts_with(".claude-plugin/") || f.path.contains("/.claude-plugin/") {
            sink.emit(
                &CLAUDE_PLUGIN_DIR,
                Diagnostic::new(
                    &CLAUDE_PLUGIN_DIR,
                    &f.path,
                    "`.claude-plugin/` is not allowed in an uploaded skill",
                )
                .help("remove the plugin manifest from the skill folder"),
            );
        }
        if let Some(c) = f.path.chars().find(|&c| {
            c == '\\' || c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
        }) {
            sink.emit(
                &INVALID_PATH,
                Diagnostic::new(
                    &INVALID_PATH,
                    &f.path,
                    format!("path contains `{}`", c.escape_default()),
                )
                .help("rename it with letters, digits, `-`, `_` and `.`"),
            );
        }
    }
}
