//! Claude Code (target claude-code): what Claude Code does to a skill's text when it runs.

use std::sync::LazyLock;

use regex::Regex;

use crate::diag::Diagnostic;
use crate::engine::{Context, Sink};
use crate::parse::markdown::body_start;
use crate::registry::{CLAUDE_CODE, declare_rules};
use crate::settings::Target;

declare_rules! {
    ARGUMENT_PLACEHOLDER = "CC001", "argument-placeholder", Warning, on, fixable: false,
        summary: "the SKILL.md body holds `$ARGUMENTS`, `$ARGUMENTS[N]` or `$N`, which Claude Code replaces with the skill's arguments, and the skill declares no `argument-hint`",
        why: "Claude Code substitutes these placeholders in the skill's content before the agent reads it: `awk '{print $1}'` in an example becomes `awk '{print }'` when the skill is invoked without arguments.",
        example: "```bash\nawk '{print $1}' access.log\n```",
        fix: "Escape the example (`awk '{print \\$1}'` in a script file the skill links), move it into a file under scripts/, or, when the skill does take arguments, declare `argument-hint:`.",
        source: CLAUDE_CODE;
}

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$(?:ARGUMENTS(?:\[\d+\])?|\d+)").expect("static regex"));

pub fn check(ctx: &Context, sink: &mut Sink) {
    if ctx.settings.target != Target::ClaudeCode {
        return;
    }
    let Some(file) = ctx.skill_md() else { return };
    let declares_arguments = ctx
        .frontmatter
        .as_ref()
        .is_some_and(|f| f.get("argument-hint").is_some());
    if declares_arguments {
        return;
    }
    let start = body_start(file.text);
    // One finding a line: a price table (`$5`, `$25`) is one problem, not one per cell.
    let mut last_line = 0;
    for m in PLACEHOLDER.find_iter(&file.text[start..]) {
        let after = file.text[start + m.end()..].chars().next();
        if after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let (line, col) = file.index.line_col(file.text, start + m.start());
        if line == last_line {
            continue;
        }
        last_line = line;
        sink.emit(
            &ARGUMENT_PLACEHOLDER,
            Diagnostic::new(
                &ARGUMENT_PLACEHOLDER,
                "SKILL.md",
                format!(
                    "`{}` is replaced by Claude Code with the skill's arguments (empty without any)",
                    m.as_str()
                ),
            )
            .at(line, col)
            .source_line(file.source_line(line, col, m.as_str().chars().count()))
            .help("move the example into a script file, or declare `argument-hint:` if the skill takes arguments"),
        );
    }
}
