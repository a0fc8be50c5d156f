//! Checklist coverage (opt-in): every `- [ ]` item links to the place that teaches it, and
//! the items `[checklist] require` names are there.

use crate::diag::{Coverage, Diagnostic};
use crate::engine::{Context, Sink};
use crate::registry::{GITHUB_TASKLISTS, declare_rules};
use crate::text::normalize_item;

declare_rules! {
    CHECKLIST_UNCOVERED = "CHK001", "checklist-item-uncovered", Warning, opt_in, fixable: false,
        summary: "a checklist item has no link to the place in the skill that teaches it",
        why: "Coverage proves that every item the agent must deliver is taught somewhere it can load. The link must resolve, and an anchor must point at a section with content.",
        example: "- [ ] Rate limiting shared by all workers",
        fix: "Link the item: `- [ ] Rate limiting -> [middleware](references/middleware.md#rate-limiting)`.",
        source: GITHUB_TASKLISTS;
    CHECKLIST_REQUIRED = "CHK002", "checklist-required-missing", Error, on, fixable: false,
        summary: "an entry of `[checklist] require` matches no checklist item",
        why: "Required items stop a checklist from passing by dropping them.",
        example: "require = [\"Rate limiting\"] but no `- [ ]` item mentions it",
        fix: "Add the checklist item back, or change the requirement in skillcheck.toml.",
        source: GITHUB_TASKLISTS;
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    for (path, file) in &ctx.files {
        if file.doc.tasks.is_empty() {
            continue;
        }
        let mut cov = Coverage::default();
        for task in &file.doc.tasks {
            cov.total += 1;
            if task.links.iter().any(|&i| file.links[i].covers()) {
                cov.covered += 1;
                continue;
            }
            let short: String = task.text.chars().take(60).collect();
            let ellipsis = if task.text.chars().count() > 60 {
                "…"
            } else {
                ""
            };
            let help = if task.links.is_empty() {
                "link the item to the reference, template or script that teaches it"
            } else {
                "its links must resolve inside the skill, and an anchor must point at a section with content"
            };
            sink.emit(
                &CHECKLIST_UNCOVERED,
                Diagnostic::new(
                    &CHECKLIST_UNCOVERED,
                    *path,
                    format!("checklist item \"{short}{ellipsis}\" links to nothing in the skill that teaches it"),
                )
                .at(task.line, task.col)
                .source_line(file.source_line(task.line, task.col, 0))
                .help(help),
            );
        }
        sink.stats.checklist_total.covered += cov.covered;
        sink.stats.checklist_total.total += cov.total;
        sink.stats.checklist.insert(path.to_string(), cov);
    }
    required_items(ctx, sink);
}

fn required_items(ctx: &Context, sink: &mut Sink) {
    let required = ctx.settings.checklist_require;
    if required.is_empty() {
        return;
    }
    let items: Vec<String> = ctx
        .files
        .values()
        .flat_map(|f| f.doc.tasks.iter().map(|t| normalize_item(&t.text)))
        .collect();
    sink.stats.checklist_required = required.len();
    let config_name = ctx.config_name();
    for entry in required {
        let needle = normalize_item(entry);
        if items.iter().any(|i| i.contains(&needle)) {
            sink.stats.checklist_required_found += 1;
        } else {
            sink.emit(
                &CHECKLIST_REQUIRED,
                Diagnostic::new(
                    &CHECKLIST_REQUIRED,
                    "SKILL.md",
                    format!("required checklist item \"{entry}\" (from {config_name}) matches no `- [ ]` item"),
                )
                .help("add the item to a checklist, or change `[checklist] require`"),
            );
        }
    }
}
