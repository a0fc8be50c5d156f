//! The server driven through an in-memory connection, message by message, as a client would.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use lsp_server::{Connection, Message, Notification, ProtocolError, Request, Response};
use serde_json::{Value, json};

use super::serve;
use super::uri::from_path;

struct Client {
    conn: Connection,
    server: JoinHandle<Result<u8, ProtocolError>>,
    next_id: i32,
    /// Notifications received while waiting for something else.
    seen: Vec<Notification>,
}

impl Client {
    fn start() -> Client {
        let (server_side, client_side) = Connection::memory();
        let server = std::thread::spawn(move || serve(&server_side));
        let mut client = Client {
            conn: client_side,
            server,
            next_id: 0,
            seen: Vec::new(),
        };
        let init = client.request("initialize", json!({"capabilities": {}}));
        assert_eq!(init["serverInfo"]["name"], "skillcheck");
        client.notify("initialized", json!({}));
        client
    }

    fn recv(&mut self) -> Message {
        self.conn
            .receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("the server answers within 20 s")
    }

    fn raw_request(&mut self, method: &str, params: Value) -> Response {
        self.next_id += 1;
        let id = self.next_id;
        let request = Request::new(id.into(), method.to_string(), params);
        self.conn.sender.send(request.into()).expect("send");
        loop {
            match self.recv() {
                Message::Response(r) if r.id == id.into() => return r,
                Message::Notification(n) => self.seen.push(n),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let response = self.raw_request(method, params);
        response
            .response_result
            .unwrap_or_else(|e| panic!("{method} failed: {e:?}"))
    }

    fn notify(&mut self, method: &str, params: Value) {
        let n = Notification::new(method.to_string(), params);
        self.conn.sender.send(n.into()).expect("send");
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        let is_it = |n: &Notification| {
            n.method == "textDocument/publishDiagnostics" && n.params["uri"] == uri
        };
        if let Some(i) = self.seen.iter().position(is_it) {
            let n = self.seen.remove(i);
            return n.params["diagnostics"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
        loop {
            match self.recv() {
                Message::Notification(n) if is_it(&n) => {
                    return n.params["diagnostics"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                }
                Message::Notification(n) => self.seen.push(n),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn stop(mut self) -> u8 {
        assert_eq!(self.request("shutdown", Value::Null), Value::Null);
        self.notify("exit", Value::Null);
        self.server
            .join()
            .expect("server thread")
            .expect("protocol")
    }
}

fn codes(diagnostics: &[Value]) -> Vec<&str> {
    diagnostics
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect()
}

fn write_skill(dir: &Path) -> (String, String) {
    std::fs::create_dir_all(dir.join("references")).unwrap();
    let skill = "---\nname: demo\ndescription: Builds the weekly report. Use when asked for it.\n---\n\n# Demo\n\nVoir «😀» [le guide](references/guide.md#Usage-Notes) et [setup](references/guide.md#setup).\n";
    std::fs::write(dir.join("SKILL.md"), skill).unwrap();
    std::fs::write(
        dir.join("references/guide.md"),
        "# Guide\n\n## Usage Notes\n\nRead this.\n",
    )
    .unwrap();
    (
        skill.to_string(),
        "# Guide\n\n## Usage Notes\n\nRead this.\n".to_string(),
    )
}

#[test]
fn a_session_diagnoses_fixes_explains_and_follows_other_buffers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let (skill, guide) = write_skill(&dir);
    let skill_uri = from_path(&dir.join("SKILL.md"))
        .unwrap()
        .as_str()
        .to_string();
    let guide_uri = from_path(&dir.join("references/guide.md"))
        .unwrap()
        .as_str()
        .to_string();
    let mut client = Client::start();
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": skill_uri, "languageId": "markdown", "version": 1, "text": skill}}),
    );
    let found = client.diagnostics(&skill_uri);
    assert_eq!(codes(&found), ["LNK004", "LNK003"], "{found:#?}");
    // The link's `[` is at byte 14 of its line and character 9 (0-based), but UTF-16 unit 10:
    // the emoji is one character and two units. The range is the whole link.
    let case = &found[0];
    assert_eq!(
        case["range"],
        json!({"start": {"line": 7, "character": 10}, "end": {"line": 7, "character": 53}})
    );

    let actions = client.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": skill_uri}, "range": case["range"],
               "context": {"diagnostics": [case]}}),
    );
    let quick = &actions[0];
    assert_eq!(quick["kind"], "quickfix");
    let edit = &quick["edit"]["changes"][&skill_uri][0];
    assert_eq!(edit["newText"], "#usage-notes");
    assert_eq!(
        edit["range"],
        json!({"start": {"line": 7, "character": 40}, "end": {"line": 7, "character": 52}})
    );
    assert_eq!(actions[1]["kind"], "source.fixAll");

    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": skill_uri}, "position": {"line": 7, "character": 20}}),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.starts_with("LNK004 anchor-case-mismatch"), "{text}");

    // A heading typed into the other buffer, unsaved, resolves the link.
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": guide_uri, "languageId": "markdown", "version": 1, "text": guide}}),
    );
    assert_eq!(codes(&client.diagnostics(&skill_uri)), ["LNK004", "LNK003"]);
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": guide_uri, "version": 2},
               "contentChanges": [{"range": {"start": {"line": 5, "character": 0},
                                             "end": {"line": 5, "character": 0}},
                                   "text": "\n## Setup\n\nSteps.\n"}]}),
    );
    assert_eq!(codes(&client.diagnostics(&skill_uri)), ["LNK004"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("references/guide.md")).unwrap(),
        guide,
        "nothing was saved"
    );
    assert_eq!(client.stop(), 0);
}

#[test]
fn bad_input_gets_clear_answers_and_never_stops_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let (skill, _) = write_skill(&dir);
    let skill_uri = from_path(&dir.join("SKILL.md"))
        .unwrap()
        .as_str()
        .to_string();
    let outside = from_path(&tmp.path().join("notes.md"))
        .unwrap()
        .as_str()
        .to_string();
    let mut client = Client::start();
    // Edits to documents that were never opened, and documents outside any skill.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": "file:///nowhere/x.md", "version": 2},
               "contentChanges": [{"text": "x"}]}),
    );
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": outside, "languageId": "markdown", "version": 1, "text": "[x](#nope)"}}),
    );
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": "untitled:Untitled-1", "languageId": "markdown", "version": 1, "text": "é"}}),
    );
    client.notify("textDocument/didOpen", json!({"textDocument": 42}));
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": "untitled:Untitled-1"}, "position": {"line": 0, "character": 1}}),
    );
    assert_eq!(hover, Value::Null);
    let bad = client.raw_request("textDocument/codeAction", json!({"range": "all"}));
    let error = bad.response_result.expect_err("an error");
    assert_eq!(error.code, lsp_server::ErrorCode::InvalidParams as i32);
    assert!(
        error
            .message
            .starts_with("textDocument/codeAction: invalid params")
    );
    let unknown = client.raw_request("textDocument/rename", json!({}));
    assert_eq!(
        unknown.response_result.map_err(|e| e.code),
        Err(lsp_server::ErrorCode::MethodNotFound as i32)
    );

    // Positions past the end of a line, past the last line, inside a surrogate pair.
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": skill_uri, "languageId": "markdown", "version": 1, "text": skill}}),
    );
    assert_eq!(codes(&client.diagnostics(&skill_uri)).len(), 2);
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": skill_uri, "version": 2},
               "contentChanges": [
                   {"range": {"start": {"line": 7, "character": 7}, "end": {"line": 7, "character": 8}}, "text": ""},
                   {"range": {"start": {"line": 99, "character": 0}, "end": {"line": 120, "character": 5}}, "text": "\nEnd.\n"},
                   {"range": {"start": {"line": 0, "character": 500}, "end": {"line": 0, "character": 600}}, "text": ""}]}),
    );
    let after = client.diagnostics(&skill_uri);
    assert_eq!(codes(&after), ["LNK004", "LNK003"]);
    // The emoji went (the cut inside its pair took the whole character), so `[` moved left.
    assert_eq!(
        after[0]["range"]["start"],
        json!({"line": 7, "character": 8})
    );
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": skill_uri}, "position": {"line": 4000, "character": 4000}}),
    );
    assert_eq!(hover, Value::Null);
    assert!(
        !client.seen.iter().any(
            |n| n.params["uri"] == outside.as_str() || n.params["uri"] == "untitled:Untitled-1"
        ),
        "files outside a skill get no diagnostics"
    );
    assert_eq!(client.stop(), 0);
}
