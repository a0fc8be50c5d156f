//! The server's state: the open buffers, the skills they belong to, and the findings last
//! published, with the handlers that change or read them. Nothing here touches the
//! transport: handlers queue their messages, and the loop sends them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Component, Path, PathBuf};

use lsp_server::{ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidChangeWatchedFiles, DidCloseTextDocument, DidOpenTextDocument,
    DidSaveTextDocument, LogMessage, Notification as _, PublishDiagnostics, ShowMessage,
};
use lsp_types::request::{CodeActionRequest, HoverRequest, Request as _};
use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, DiagnosticSeverity,
    DidChangeTextDocumentParams, DidChangeWatchedFilesParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, DidSaveTextDocumentParams, Hover, HoverContents, HoverParams,
    LogMessageParams, MarkupContent, MarkupKind, MessageType, NumberOrString, Position,
    PublishDiagnosticsParams, Range, ShowMessageParams, TextEdit, Uri, WorkspaceEdit,
};
use serde::de::DeserializeOwned;

use super::position::Lines;
use super::uri;
use crate::config::Config;
use crate::diag::{Diagnostic, Edit};
use crate::fix::compatible_edits;
use crate::lint::{Options, lint_skill};
use crate::registry::{self, Rule, Severity};
use crate::rules;
use crate::source::SkillSource;

/// An open buffer.
struct Document {
    uri: Uri,
    /// `None` for URIs that name no local file (`untitled:`).
    path: Option<PathBuf>,
    text: String,
    version: i32,
}

/// One published finding, kept to answer hover and code actions.
struct Finding {
    diagnostic: lsp_types::Diagnostic,
    rule: &'static Rule,
    /// As configured for the skill, which hover reports.
    severity: Severity,
    /// The certain fix, in the document's current text; `edit` in bytes for "fix all".
    fix: Option<(TextEdit, Edit)>,
}

#[derive(Default)]
pub struct Server {
    /// By URI as the client spells it.
    documents: HashMap<String, Document>,
    /// The findings of every file published with some, by URI.
    findings: HashMap<String, Vec<Finding>>,
    /// Per skill root, the URIs published with findings (so they can be cleared).
    published: HashMap<PathBuf, BTreeSet<String>>,
    /// Skill roots to lint before the next answer or when the loop is idle.
    pending: BTreeSet<PathBuf>,
    /// Per skill root, the error last shown, so a broken config is not shown on every
    /// keystroke.
    shown: HashMap<PathBuf, String>,
    outgoing: Vec<Message>,
}

/// A request's parameters, or the error response that says what was wrong with them.
fn params<P: DeserializeOwned>(request: &Request) -> Result<P, Response> {
    serde_json::from_value(request.params.clone()).map_err(|e| {
        Response::new_err(
            request.id.clone(),
            ErrorCode::InvalidParams as i32,
            format!("{}: invalid params: {e}", request.method),
        )
    })
}

fn contains(range: &Range, at: Position) -> bool {
    range.start <= at && at <= range.end
}

fn overlaps(a: &Range, b: &Range) -> bool {
    a.start <= b.end && b.start <= a.end
}

/// `dir/sub/f.md` under `root` as the skill-relative `sub/f.md`; `None` outside the root.
fn relative_to(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

impl Server {
    /// The messages queued since the last call.
    pub fn take_outgoing(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.outgoing)
    }

    fn notify<N: lsp_types::notification::Notification>(&mut self, params: N::Params) {
        self.outgoing
            .push(Notification::new(N::METHOD.to_string(), params).into());
    }

    fn log(&mut self, typ: MessageType, message: String) {
        self.notify::<LogMessage>(LogMessageParams { typ, message });
    }

    /// Shows an error about a skill in the editor once (until it changes or goes away), and
    /// logs it each time.
    fn error(&mut self, root: &Path, message: String) {
        if self.shown.get(root) != Some(&message) {
            self.shown.insert(root.to_path_buf(), message.clone());
            self.notify::<ShowMessage>(ShowMessageParams {
                typ: MessageType::ERROR,
                message: message.clone(),
            });
        }
        self.log(MessageType::ERROR, message);
    }

    fn respond(&mut self, response: Response) {
        self.outgoing.push(response.into());
    }

    pub fn request(&mut self, request: Request) {
        let response = match request.method.as_str() {
            HoverRequest::METHOD => params(&request).map(|p| {
                self.lint_pending();
                Response::new_ok(request.id.clone(), self.hover(&p))
            }),
            CodeActionRequest::METHOD => params(&request).map(|p| {
                self.lint_pending();
                Response::new_ok(request.id.clone(), self.code_actions(&p))
            }),
            _ => Err(method_not_found(&request.id, &request.method)),
        };
        self.respond(response.unwrap_or_else(|e| e));
    }

    pub fn notification(&mut self, n: Notification) {
        let method = n.method.clone();
        let result = match method.as_str() {
            DidOpenTextDocument::METHOD => self.with(n, Self::did_open),
            DidChangeTextDocument::METHOD => self.with(n, Self::did_change),
            DidSaveTextDocument::METHOD => self.with(n, |s, p: DidSaveTextDocumentParams| {
                s.touch(&p.text_document.uri);
            }),
            DidCloseTextDocument::METHOD => self.with(n, |s, p: DidCloseTextDocumentParams| {
                s.touch(&p.text_document.uri);
                s.documents.remove(p.text_document.uri.as_str());
            }),
            DidChangeWatchedFiles::METHOD => self.with(n, |s, p: DidChangeWatchedFilesParams| {
                for change in p.changes {
                    s.touch(&change.uri);
                }
            }),
            // `initialized`, `$/cancelRequest` (every answer is immediate), `$/setTrace`,
            // configuration changes (the config is read at each lint): nothing to do.
            _ => Ok(()),
        };
        if let Err(e) = result {
            self.log(
                MessageType::ERROR,
                format!("{method}: invalid params, ignored: {e}"),
            );
        }
    }

    fn with<P: DeserializeOwned>(
        &mut self,
        n: Notification,
        handle: impl FnOnce(&mut Self, P),
    ) -> Result<(), serde_json::Error> {
        let p = serde_json::from_value(n.params)?;
        handle(self, p);
        Ok(())
    }

    fn did_open(&mut self, p: DidOpenTextDocumentParams) {
        let doc = p.text_document;
        self.documents.insert(
            doc.uri.as_str().to_string(),
            Document {
                path: uri::to_path(&doc.uri),
                uri: doc.uri.clone(),
                text: doc.text,
                version: doc.version,
            },
        );
        self.touch(&doc.uri);
    }

    fn did_change(&mut self, p: DidChangeTextDocumentParams) {
        let key = p.text_document.uri.as_str();
        let Some(doc) = self.documents.get_mut(key) else {
            let message = format!("didChange for {key}, which is not open: ignored");
            return self.log(MessageType::WARNING, message);
        };
        for change in p.content_changes {
            match change.range {
                None => doc.text = change.text,
                Some(range) => {
                    let lines = Lines::new(&doc.text);
                    let start = lines.offset(range.start);
                    let end = lines.offset(range.end).max(start);
                    doc.text.replace_range(start..end, &change.text);
                }
            }
        }
        doc.version = p.text_document.version;
        self.touch(&p.text_document.uri);
    }

    /// Marks the skill that holds `uri` for linting.
    fn touch(&mut self, uri: &Uri) {
        if let Some(root) = uri::to_path(uri).and_then(|p| self.skill_root(&p)) {
            self.pending.insert(root);
        }
    }

    /// The nearest folder above `path` with a SKILL.md, on disk or in an open buffer.
    fn skill_root(&self, path: &Path) -> Option<PathBuf> {
        let open: HashSet<&Path> = self
            .documents
            .values()
            .filter_map(|d| d.path.as_deref())
            .collect();
        path.ancestors().skip(1).find_map(|dir| {
            let skill_md = dir.join("SKILL.md");
            (open.contains(skill_md.as_path()) || skill_md.is_file()).then(|| dir.to_path_buf())
        })
    }

    /// Lints every skill marked since the last lint.
    pub fn lint_pending(&mut self) {
        for root in std::mem::take(&mut self.pending) {
            self.lint(&root);
        }
    }

    fn lint(&mut self, root: &Path) {
        let shown = root.display();
        let config = match Config::discover(root) {
            Ok(c) => c,
            Err(e) => {
                self.publish(root, HashMap::new());
                return self.error(
                    root,
                    format!(
                        "skillcheck: {e}; no diagnostics for {shown} until the config is fixed"
                    ),
                );
            }
        };
        let mut source = match SkillSource::from_dir(root, &config.read_limits()) {
            Ok(s) => s,
            Err(e) => return self.error(root, format!("skillcheck: cannot read the skill: {e}")),
        };
        for doc in self.documents.values() {
            if let Some(rel) = doc.path.as_deref().and_then(|p| relative_to(root, p)) {
                source.put_file(&rel, doc.text.as_bytes().to_vec());
            }
        }
        // A bug in one rule must not take the editor's server down with it.
        let report = match catch_unwind(AssertUnwindSafe(|| {
            lint_skill(&source, &config, &Options::default())
        })) {
            Ok(r) => r,
            Err(_) => {
                return self.error(root, format!(
                    "skillcheck: linting {shown} failed (a bug in skillcheck; the panic message is in the server's stderr)"
                ));
            }
        };
        self.shown.remove(root);
        let mut by_file: HashMap<&str, Vec<&Diagnostic>> = HashMap::new();
        for d in &report.diagnostics {
            // Findings about the whole skill show on its SKILL.md.
            let file = if d.file.is_empty() {
                "SKILL.md"
            } else {
                &d.file
            };
            by_file.entry(file).or_default().push(d);
        }
        let mut findings = HashMap::new();
        for (file, diagnostics) in by_file {
            let path = root.join(file);
            let Some(uri) = self.uri_of(&path) else {
                continue;
            };
            let text = source.file(file).and_then(|f| f.text()).unwrap_or_default();
            let lines = Lines::new(text);
            let list: Vec<Finding> = diagnostics
                .into_iter()
                .filter_map(|d| Some(finding(d, rules::find(d.code)?, &lines)))
                .collect();
            findings.insert(uri.as_str().to_string(), (uri, list));
        }
        let count: usize = findings.values().map(|(_, l)| l.len()).sum();
        self.log(
            MessageType::LOG,
            format!("linted {shown}: {count} finding(s)"),
        );
        self.publish(root, findings);
    }

    /// The URI of a file: the open buffer's own spelling when it is open.
    fn uri_of(&self, path: &Path) -> Option<Uri> {
        self.documents
            .values()
            .find(|d| d.path.as_deref() == Some(path))
            .map(|d| d.uri.clone())
            .or_else(|| uri::from_path(path))
    }

    /// Publishes a skill's findings, clearing the files that had some and have none now.
    fn publish(&mut self, root: &Path, findings: HashMap<String, (Uri, Vec<Finding>)>) {
        let before = self.published.remove(root).unwrap_or_default();
        for key in before.iter().filter(|k| !findings.contains_key(*k)) {
            self.findings.remove(key);
            if let Ok(uri) = key.parse::<Uri>() {
                self.send_diagnostics(uri, Vec::new());
            }
        }
        let mut now = BTreeSet::new();
        for (key, (uri, list)) in findings {
            let diagnostics = list.iter().map(|f| f.diagnostic.clone()).collect();
            self.send_diagnostics(uri, diagnostics);
            self.findings.insert(key.clone(), list);
            now.insert(key);
        }
        self.published.insert(root.to_path_buf(), now);
    }

    fn send_diagnostics(&mut self, uri: Uri, diagnostics: Vec<lsp_types::Diagnostic>) {
        let version = self.documents.get(uri.as_str()).map(|d| d.version);
        self.notify::<PublishDiagnostics>(PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        });
    }

    /// `skillcheck explain` for each rule with a finding under the cursor, with the severity
    /// the finding has in this skill.
    fn hover(&self, p: &HoverParams) -> Option<Hover> {
        let at = &p.text_document_position_params;
        let under: Vec<&Finding> = self
            .findings
            .get(at.text_document.uri.as_str())?
            .iter()
            .filter(|f| contains(&f.diagnostic.range, at.position))
            .collect();
        let first = under.first()?;
        let mut codes = BTreeSet::new();
        let text: Vec<String> = under
            .iter()
            .filter(|f| codes.insert(f.rule.code))
            .map(|f| registry::explain_reported(f.rule, f.severity))
            .collect();
        Some(Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value: text.join("\n---\n\n"),
            }),
            range: Some(first.diagnostic.range),
        })
    }

    /// A quick fix per fixable finding in the range, and one "fix all" for the file.
    fn code_actions(&self, p: &CodeActionParams) -> Vec<CodeActionOrCommand> {
        let uri = &p.text_document.uri;
        let Some(findings) = self.findings.get(uri.as_str()) else {
            return Vec::new();
        };
        let wanted = |kind: &CodeActionKind| {
            p.context
                .only
                .as_ref()
                .is_none_or(|only| only.iter().any(|o| kind.as_str().starts_with(o.as_str())))
        };
        let action = |title: String, kind: CodeActionKind, fixed: Vec<&Finding>, edits| {
            CodeActionOrCommand::CodeAction(CodeAction {
                title,
                kind: Some(kind),
                diagnostics: Some(fixed.iter().map(|f| f.diagnostic.clone()).collect()),
                edit: Some(WorkspaceEdit {
                    changes: Some(HashMap::from([(uri.clone(), edits)])),
                    ..WorkspaceEdit::default()
                }),
                is_preferred: Some(true),
                ..CodeAction::default()
            })
        };
        let fixable: Vec<&Finding> = findings.iter().filter(|f| f.fix.is_some()).collect();
        let mut actions = Vec::new();
        if wanted(&CodeActionKind::QUICKFIX) {
            for f in fixable
                .iter()
                .filter(|f| overlaps(&f.diagnostic.range, &p.range))
            {
                let Some((edit, _)) = &f.fix else { continue };
                let title = format!(
                    "Fix {} ({}): write `{}`",
                    f.rule.code, f.rule.name, edit.new_text
                );
                actions.push(action(
                    title,
                    CodeActionKind::QUICKFIX,
                    vec![f],
                    vec![edit.clone()],
                ));
            }
        }
        if wanted(&CodeActionKind::SOURCE_FIX_ALL) && !fixable.is_empty() {
            // The edits `lint --fix` would make together: overlapping ones wait for a rerun.
            let bytes: Vec<&Edit> = fixable
                .iter()
                .filter_map(|f| Some(&f.fix.as_ref()?.1))
                .collect();
            let chosen = compatible_edits(&bytes, usize::MAX);
            let (fixed, edits): (Vec<&Finding>, Vec<TextEdit>) = fixable
                .iter()
                .filter_map(|f| {
                    let (edit, e) = f.fix.as_ref()?;
                    chosen
                        .iter()
                        .any(|c| std::ptr::eq(*c, e))
                        .then(|| (*f, edit.clone()))
                })
                .unzip();
            let title = format!("Fix all skillcheck problems in this file ({})", edits.len());
            actions.push(action(title, CodeActionKind::SOURCE_FIX_ALL, fixed, edits));
        }
        actions
    }
}

fn method_not_found(id: &RequestId, method: &str) -> Response {
    Response::new_err(
        id.clone(),
        ErrorCode::MethodNotFound as i32,
        format!("skillcheck server does not handle `{method}`"),
    )
}

/// A lint diagnostic as the protocol shows it, with its fix in the file's text.
fn finding(d: &Diagnostic, rule: &'static Rule, lines: &Lines) -> Finding {
    let message = match &d.help {
        Some(help) => format!("{}\nhelp: {help}", d.message),
        None => d.message.clone(),
    };
    Finding {
        diagnostic: lsp_types::Diagnostic {
            range: lines.diagnostic_range(d),
            severity: Some(match d.severity {
                Severity::Error => DiagnosticSeverity::ERROR,
                Severity::Warning => DiagnosticSeverity::WARNING,
            }),
            code: Some(NumberOrString::String(d.code.to_string())),
            source: Some("skillcheck".to_string()),
            message,
            ..lsp_types::Diagnostic::default()
        },
        rule,
        severity: d.severity,
        fix: d.fix.as_ref().map(|e| {
            let edit = TextEdit::new(lines.range(&e.range), e.replacement.clone());
            (edit, e.clone())
        }),
    }
}
