//! `skillcheck server`: a language server on stdio for a skill's Markdown files.
//!
//! Diagnostics come from [`lint_skill`](crate::lint_skill) under the skill's
//! `skillcheck.toml`, run on the editor's buffers (saved or not) laid over the skill read from
//! disk, so a link into another open buffer resolves against what that buffer holds now.
//! Quick fixes are the certain edits `lint --fix` applies; hovering a finding shows
//! `skillcheck explain` for its rule.
//!
//! One thread handles the messages in order. A burst of edits is linted once: the loop
//! handles every message that is already waiting before it lints, and a request that reads
//! the findings (hover, code actions) lints first, so it never answers from stale text.

mod position;
mod state;
mod uri;

use lsp_server::{Connection, Message, ProtocolError};
use lsp_types::{
    CodeActionKind, CodeActionOptions, CodeActionProviderCapability, HoverProviderCapability,
    PositionEncodingKind, SaveOptions, ServerCapabilities, TextDocumentSyncCapability,
    TextDocumentSyncKind, TextDocumentSyncOptions, TextDocumentSyncSaveOptions,
};

pub use state::Server;

/// What the server offers: incremental text sync, hover, quick fixes and "fix all".
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::UTF16),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                    include_text: Some(false),
                })),
                ..TextDocumentSyncOptions::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![
                CodeActionKind::QUICKFIX,
                CodeActionKind::SOURCE_FIX_ALL,
            ]),
            ..CodeActionOptions::default()
        })),
        ..ServerCapabilities::default()
    }
}

/// Serves one client over `connection` until it says `exit`. Returns the exit code the
/// protocol asks for: 0 after `shutdown`, 1 when the client exits or vanishes without it.
pub fn serve(connection: &Connection) -> Result<u8, ProtocolError> {
    let (id, _params) = connection.initialize_start()?;
    let result = serde_json::json!({
        "capabilities": capabilities(),
        "serverInfo": {"name": "skillcheck", "version": env!("CARGO_PKG_VERSION")},
    });
    connection.initialize_finish(id, result)?;
    let mut server = Server::default();
    // False once the writer is gone: nobody is listening any more.
    let send = |server: &mut Server| {
        server
            .take_outgoing()
            .into_iter()
            .all(|message| connection.sender.send(message).is_ok())
    };
    while let Ok(first) = connection.receiver.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Request(request) => {
                    if connection.handle_shutdown(&request)? {
                        return Ok(0);
                    }
                    server.request(request);
                }
                Message::Notification(n) if n.method == "exit" => return Ok(1),
                Message::Notification(n) => server.notification(n),
                // The server sends no requests, so no response is awaited.
                Message::Response(_) => {}
            }
            if !send(&mut server) {
                return Ok(1);
            }
            next = connection.receiver.try_recv().ok();
        }
        server.lint_pending();
        if !send(&mut server) {
            return Ok(1);
        }
    }
    Ok(1)
}

/// `skillcheck server`: serves the client on stdin/stdout.
pub fn run_stdio() -> anyhow::Result<u8> {
    let (connection, io_threads) = Connection::stdio();
    let code = serve(&connection).map_err(|e| anyhow::anyhow!("language server: {e}"))?;
    // The writer thread ends once every sender is gone.
    drop(connection);
    io_threads
        .join()
        .map_err(|e| anyhow::anyhow!("language server: {e}"))?;
    Ok(code)
}

#[cfg(test)]
mod tests;
