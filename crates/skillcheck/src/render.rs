//! Output formats: human (annotated snippets), JSON, GitHub Actions annotations, SARIF 2.1.0.

use std::fmt::Write as _;
use std::time::Duration;

use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};
use serde_json::{Value, json};

use crate::diag::{Diagnostic, Report};
use crate::registry::Severity;
use crate::rules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Github,
    Sarif,
}

/// Totals for the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub skills: usize,
    pub files: usize,
    pub errors: usize,
    pub warnings: usize,
    pub elapsed: Duration,
    /// (found, required) over all skills, when any skill has `[checklist] require`.
    pub required: Option<(usize, usize)>,
}

impl Summary {
    pub fn of(reports: &[Report], elapsed: Duration) -> Summary {
        let (errors, warnings) = crate::lint::totals(reports);
        let required: usize = reports.iter().map(|r| r.stats.checklist_required).sum();
        let found: usize = reports
            .iter()
            .map(|r| r.stats.checklist_required_found)
            .sum();
        Summary {
            skills: reports.len(),
            files: reports.iter().map(|r| r.stats.files).sum(),
            errors,
            warnings,
            elapsed,
            required: (required > 0).then_some((found, required)),
        }
    }

    pub fn line(&self) -> String {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let mut s = format!(
            "{}, {}: {}, {} in {:.2}s",
            plural(self.skills, "skill"),
            plural(self.files, "file"),
            plural(self.errors, "error"),
            plural(self.warnings, "warning"),
            self.elapsed.as_secs_f64()
        );
        if let Some((found, required)) = self.required {
            let _ = write!(s, "; checklist {found}/{required} required covered");
        }
        s
    }
}

/// Renders reports in `format`. `color` only affects the human format.
pub fn render(
    format: Format,
    reports: &[Report],
    summary: &Summary,
    stats: bool,
    color: bool,
) -> String {
    match format {
        Format::Human => human(reports, summary, stats, color),
        Format::Json => {
            let mut s =
                serde_json::to_string_pretty(&json_value(reports, summary)).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Github => github(reports, summary),
        Format::Sarif => {
            let mut s = serde_json::to_string_pretty(&sarif(reports)).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}

/// One diagnostic as annotated text (what `pack` prints for blocking lint errors).
pub fn human_diagnostic(report: &Report, d: &Diagnostic, color: bool) -> String {
    let path = report.display_path(&d.file);
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let title = level.primary_title(d.message.as_str()).id(d.code);
    let mut group: Group = match &d.source_line {
        Some(line) if d.line > 0 => {
            let highlight = if line.highlight.is_empty() && !line.text.is_empty() {
                let end = line.text[line.highlight.start..]
                    .chars()
                    .next()
                    .map_or(line.highlight.start, |c| {
                        line.highlight.start + c.len_utf8()
                    });
                line.highlight.start..end
            } else {
                line.highlight.clone()
            };
            title.element(
                Snippet::source(line.text.as_str())
                    .line_start(d.line)
                    .path(path.clone())
                    .annotation(AnnotationKind::Primary.span(highlight)),
            )
        }
        _ => {
            let mut origin = Origin::path(path.clone());
            if d.line > 0 {
                origin = origin.line(d.line).char_column(d.col);
            }
            title.element(origin)
        }
    };
    if let Some(help) = &d.help {
        group = group.element(Level::HELP.message(help.as_str()));
    }
    if d.fix.is_some() {
        group = group.element(Level::NOTE.message("`skillcheck lint --fix` repairs this"));
    }
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    renderer.render(&[group])
}

fn human(reports: &[Report], summary: &Summary, stats: bool, color: bool) -> String {
    let mut out = String::new();
    for report in reports {
        for d in &report.diagnostics {
            out.push_str(&human_diagnostic(report, d, color));
            out.push_str("\n\n");
        }
    }
    if stats {
        for r in reports {
            out.push_str(&stats_text(r));
        }
        out.push('\n');
    }
    out.push_str(&summary.line());
    out.push('\n');
    out
}

/// `--stats` for one skill.
pub fn stats_text(r: &Report) -> String {
    let s = &r.stats;
    let mut out = format!(
        "{} ({}): {} files, {} bytes; SKILL.md body {} lines, ~{} tokens (frontmatter ~{} tokens)\n",
        r.root, r.skill, s.files, s.bytes, s.body_lines, s.body_tokens, s.metadata_tokens
    );
    if s.checklist_total.total > 0 {
        for (file, c) in &s.checklist {
            let _ = writeln!(out, "  checklist {file}: {}/{} covered", c.covered, c.total);
        }
        let _ = writeln!(
            out,
            "  checklist total: {}/{} covered",
            s.checklist_total.covered, s.checklist_total.total
        );
    }
    if s.checklist_required > 0 {
        let _ = writeln!(
            out,
            "  checklist {}/{} required covered",
            s.checklist_required_found, s.checklist_required
        );
    }
    out
}

fn diag_json(report: &Report, d: &Diagnostic) -> Value {
    json!({
        "code": d.code,
        "name": d.name,
        "severity": d.severity,
        "path": report.display_path(&d.file),
        "file": d.file,
        "line": d.line,
        "col": d.col,
        "message": d.message,
        "help": d.help,
        "fixable": d.fix.is_some(),
    })
}

pub fn json_value(reports: &[Report], summary: &Summary) -> Value {
    json!({
        "version": 1,
        "summary": {
            "skills": summary.skills,
            "files": summary.files,
            "errors": summary.errors,
            "warnings": summary.warnings,
            "seconds": summary.elapsed.as_secs_f64(),
            "checklist_required": summary.required.map(|(_, r)| r),
            "checklist_required_found": summary.required.map(|(f, _)| f),
        },
        "skills": reports.iter().map(|r| json!({
            "skill": r.skill,
            "root": r.root,
            "errors": r.errors(),
            "warnings": r.warnings(),
            "stats": r.stats,
            "diagnostics": r.diagnostics.iter().map(|d| diag_json(r, d)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn github(reports: &[Report], summary: &Summary) -> String {
    let mut out = String::new();
    for r in reports {
        for d in &r.diagnostics {
            let kind = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let mut props = format!("file={}", escape_property(&r.display_path(&d.file)));
            if d.line > 0 {
                let _ = write!(props, ",line={},col={}", d.line, d.col);
            }
            let _ = write!(
                props,
                ",title={}",
                escape_property(&format!("{} {}", d.code, d.name))
            );
            let mut message = d.message.clone();
            if let Some(help) = &d.help {
                let _ = write!(message, "\nhelp: {help}");
            }
            let _ = writeln!(out, "::{kind} {props}::{}", escape_data(&message));
        }
    }
    out.push_str(&summary.line());
    out.push('\n');
    out
}

fn sarif(reports: &[Report]) -> Value {
    let rules_json: Vec<Value> = rules::all()
        .map(|r| {
            json!({
                "id": r.code,
                "name": r.name,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.why},
                "help": {"text": r.fix},
                "defaultConfiguration": {"level": sarif_level(r.severity)},
                "properties": {"source": r.source},
            })
        })
        .collect();
    let results: Vec<Value> = reports
        .iter()
        .flat_map(|r| {
            r.diagnostics.iter().map(move |d| {
                let mut location = json!({"artifactLocation": {"uri": r.display_path(&d.file)}});
                if d.line > 0 {
                    location["region"] = json!({"startLine": d.line, "startColumn": d.col.max(1)});
                }
                let mut text = d.message.clone();
                if let Some(help) = &d.help {
                    let _ = write!(text, " (help: {help})");
                }
                json!({
                    "ruleId": d.code,
                    "ruleIndex": rules::all().position(|x| x.code == d.code),
                    "level": sarif_level(d.severity),
                    "message": {"text": text},
                    "locations": [{"physicalLocation": location}],
                })
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "skillcheck",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules_json,
            }},
            "results": results,
        }],
    })
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_escaping() {
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        assert_eq!(escape_data("a:b\r\n"), "a:b%0D%0A");
    }
}
