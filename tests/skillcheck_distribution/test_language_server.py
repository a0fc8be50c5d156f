"""`skillcheck server` driven by a real LSP client: pytest-lsp's, built on pygls, talking
JSON-RPC to the release binary over its stdin/stdout, with VS Code's client capabilities.

One session as an editor would run it: initialize, open SKILL.md (a line with non-ASCII
characters before the link, so UTF-16 columns differ from characters and bytes), read the
published diagnostics, ask for the quick fix and apply it the way an editor does (UTF-16
offsets), hover a finding for the rule's docs, type a heading into a second, unsaved buffer
and see the link into it stop being an error, then shutdown and exit. Every JSON-RPC message
is written to .cache/skillcheck-server-session.jsonl, to read or quote.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from forge_testing import REPO_ROOT, wait_for_async
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient, LanguageClientProtocol
from pytest_lsp.client import register_lsp_features

from .skills import RELEASE_BINARY, build_release_binary

TRANSCRIPT = REPO_ROOT / ".cache" / "skillcheck-server-session.jsonl"
# Recorded (direction, message) pairs of the current session.
MESSAGES: list[tuple[str, dict[str, Any]]] = []

SKILL = (
    "---\nname: demo\n"
    "description: Builds the weekly report. Use when asked for it.\n---\n\n# Demo\n\n"
    "Voir «😀» [le guide](references/guide.md#Usage-Notes) "
    "et [setup](references/guide.md#setup).\n"
)
GUIDE = "# Guide\n\n## Usage Notes\n\nRead this.\n"


class RecordingProtocol(LanguageClientProtocol):
    """pygls' client protocol, keeping a copy of every message in both directions."""

    def _send_data(self, data: Any) -> None:
        if data:
            MESSAGES.append(
                (
                    "client->server",
                    json.loads(json.dumps(data, default=self._serialize_message)),
                )
            )
        super()._send_data(data)

    def structure_message(self, data: dict[str, Any]) -> Any:
        # json.loads calls this on every object, innermost first: the top-level one has
        # "jsonrpc", and the ones inside it are still plain dicts.
        if "jsonrpc" in data:
            MESSAGES.append(("server->client", json.loads(json.dumps(data))))
        return super().structure_message(data)


def recording_client() -> LanguageClient:
    """pytest-lsp's test client (`make_test_lsp_client`), on the recording protocol."""
    client = LanguageClient(
        protocol_cls=RecordingProtocol, converter_factory=default_converter
    )
    register_lsp_features(client)
    return client


@pytest.fixture(scope="module", autouse=True)
def release_binary() -> Path:
    # Module-scoped and autouse: built before the client fixture starts the server.
    return build_release_binary()


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[str(RELEASE_BINARY), "server", "--stdio"],
        client_factory=recording_client,
    )
)
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    MESSAGES.clear()
    yield
    TRANSCRIPT.parent.mkdir(parents=True, exist_ok=True)
    TRANSCRIPT.write_text(
        "".join(
            json.dumps({"direction": d, "message": m}, ensure_ascii=False) + "\n"
            for d, m in MESSAGES
        )
    )


def write_skill(root: Path) -> Path:
    skill = root / "demo"
    (skill / "references").mkdir(parents=True)
    (skill / "SKILL.md").write_text(SKILL)
    (skill / "references" / "guide.md").write_text(GUIDE)
    # The server reads the same config as `lint`: LNK004 is lowered to a warning here.
    (skill / "skillcheck.toml").write_text('[rules]\nLNK004 = "warning"\n')
    return skill


def utf16_offset(text: str, position: types.Position) -> int:
    """The index in `text` of an LSP position, counting UTF-16 code units as LSP does."""
    lines = text.split("\n")
    before = sum(len(line) + 1 for line in lines[: position.line])
    line = lines[position.line].encode("utf-16-le")
    return before + len(line[: 2 * position.character].decode("utf-16-le"))


def apply_edits(text: str, edits: Sequence[types.TextEdit]) -> str:
    for edit in sorted(
        edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
    ):
        start = utf16_offset(text, edit.range.start)
        end = utf16_offset(text, edit.range.end)
        text = text[:start] + edit.new_text + text[end:]
    return text


async def published(
    client: LanguageClient, uri: str, codes: list[str]
) -> Sequence[types.Diagnostic]:
    """The diagnostics published for `uri` once they are `codes`, in order."""

    async def ready() -> bool:
        found = client.diagnostics.get(uri)
        return found is not None and [str(d.code) for d in found] == codes

    try:
        await wait_for_async(
            ready, f"diagnostics {codes} for {uri}", timeout=10, pause=0.05
        )
    except AssertionError as e:
        last = [(d.code, d.message) for d in client.diagnostics.get(uri, [])]
        raise AssertionError(f"{e}; last published: {last}") from None
    return client.diagnostics[uri]


def open_doc(client: LanguageClient, uri: str, text: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="markdown", version=1, text=text
            )
        )
    )


def change_doc(
    client: LanguageClient, uri: str, version: int, edits: Sequence[types.TextEdit]
) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=uri, version=version
            ),
            content_changes=[
                types.TextDocumentContentChangePartial(range=e.range, text=e.new_text)
                for e in edits
            ],
        )
    )


async def test_an_editor_session(client: LanguageClient, tmp_path: Path) -> None:
    skill = write_skill(tmp_path)
    skill_uri = (skill / "SKILL.md").as_uri()
    guide_uri = (skill / "references" / "guide.md").as_uri()

    init = await client.initialize_session(
        types.InitializeParams(
            capabilities=pytest_lsp.client_capabilities("visual-studio-code"),
            root_uri=tmp_path.as_uri(),
        )
    )
    assert init.server_info is not None and init.server_info.name == "skillcheck"
    assert init.capabilities.position_encoding == types.PositionEncodingKind.Utf16
    assert init.capabilities.hover_provider

    open_doc(client, skill_uri, SKILL)
    found = await published(client, skill_uri, ["LNK004", "LNK003"])
    case, missing = found
    assert case.severity == types.DiagnosticSeverity.Warning  # from skillcheck.toml
    assert missing.severity == types.DiagnosticSeverity.Error
    assert case.source == "skillcheck"
    # Line 8 is `Voir «😀» [le guide](...`: the link starts at byte 14, character 9, and
    # UTF-16 unit 10, since the emoji is one character in two units.
    assert case.range == types.Range(types.Position(7, 10), types.Position(7, 53))

    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=skill_uri),
            position=types.Position(7, 20),
        )
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    # The severity this skill's skillcheck.toml gives the rule, not only its default.
    assert hover.contents.value.startswith(
        "LNK004 anchor-case-mismatch"
        " (warning, set in skillcheck.toml; default error, --fix can repair)"
    ), hover.contents.value.splitlines()[0]
    assert "Why: " in hover.contents.value
    assert hover.range == case.range

    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=skill_uri),
            range=case.range,
            context=types.CodeActionContext(diagnostics=[case]),
        )
    )
    assert actions is not None
    quick = [
        a
        for a in actions
        if isinstance(a, types.CodeAction) and a.kind == types.CodeActionKind.QuickFix
    ]
    assert [a.title for a in quick] == [
        "Fix LNK004 (anchor-case-mismatch): write `#usage-notes`"
    ]
    assert quick[0].edit is not None and quick[0].edit.changes is not None
    edits = quick[0].edit.changes[skill_uri]
    fixed = apply_edits(SKILL, edits)
    assert "[le guide](references/guide.md#usage-notes)" in fixed
    # The editor applies the edit to its buffer and reports the change.
    change_doc(client, skill_uri, 2, edits)
    await published(client, skill_uri, ["LNK003"])

    # A heading typed into another buffer, never saved, resolves the link into it.
    open_doc(client, guide_uri, GUIDE)
    end = types.Position(GUIDE.count("\n"), 0)
    change_doc(
        client,
        guide_uri,
        2,
        [types.TextEdit(types.Range(end, end), "\n## Setup\n\nSteps.\n")],
    )
    await published(client, skill_uri, [])
    assert (skill / "references" / "guide.md").read_text() == GUIDE
    assert (skill / "SKILL.md").read_text() == SKILL

    await client.shutdown_session()
    server = client._server
    assert server is not None and server.returncode == 0

    # The recorded session (the fixture saves it) holds every step, in order.
    sent = [m.get("method") for d, m in MESSAGES if d == "client->server"]
    steps = [
        "initialize",
        "initialized",
        "textDocument/didOpen",
        "textDocument/hover",
        "textDocument/codeAction",
        "textDocument/didChange",
        "shutdown",
        "exit",
    ]
    first = [sent.index(s) for s in steps]
    assert first == sorted(first), sent
    assert any(
        m.get("method") == "textDocument/publishDiagnostics" for d, m in MESSAGES
    )
