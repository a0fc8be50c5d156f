"""Hardening of the agent app (issue 13), black box against every target: WebSocket runs
share the caller's rate limit, OPTIONS is no way around authentication, and request bodies
are bounded before they are read."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.sync.client import connect as ws_connect

from .conftest import RATE_LIMIT, RATE_LIMIT_WINDOW, Target
from .test_contract import assert_envelope, receive, refused, run_over

pytestmark = pytest.mark.e2e

# MAX_REQUEST_BODY_BYTES's default: 1 MiB.
BODY_LIMIT = 1024 * 1024
MiB = 1024 * 1024


# --- WebSocket runs and the rate limit --------------------------------------------------------


def test_websocket_runs_count_against_the_callers_rate_limit(target: Target) -> None:
    """One budget per caller, whatever the transport: the handshake is a request, and each
    run over the socket costs one more, as a POST /agents/run would."""
    headers = target.auth()
    with target.client(headers=headers) as client:
        for _ in range(RATE_LIMIT - 3):
            assert client.get(f"/agents/jobs/{uuid.uuid4()}").status_code == 404
    url = f"{target.ws_url}/agents/ws"
    with ws_connect(url, additional_headers=headers) as ws:  # request RATE_LIMIT - 2
        assert receive(ws) == {"type": "ready"}
        for _ in range(2):  # the last two the window allows
            assert run_over(ws, "within budget")[-1]["type"] == "done"
        over = run_over(ws, "over budget")
        # The socket stays usable: the caller may wait and run again.
        ws.send(json.dumps({"type": "ping"}))
        assert receive(ws) == {"type": "pong"}
    assert len(over) == 1, over
    (error,) = over
    assert set(error) == {"type", "text", "data", "usage"}, error
    assert error["type"] == "error"
    assert error["text"] == "too many requests; retry later"
    assert error["data"]["code"] == "rate_limited"
    assert 0 < error["data"]["retry_after"] <= RATE_LIMIT_WINDOW, error
    response = refused(url, headers).response
    assert response.status_code == 429
    body = json.loads(response.body or b"{}")
    assert body["error"]["code"] == "rate_limited"


# --- OPTIONS ----------------------------------------------------------------------------------

PROTECTED = ("/agents/run", "/agents/run/stream", "/agents/run/async", "/auth/tickets")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    ],
    ids=["not-a-preflight", "preflight-from-an-origin-not-allowed"],
)
def test_options_needs_credentials(target: Target, headers: dict[str, str]) -> None:
    """Only a CORS preflight from an allowed origin is answered without credentials (the
    contract targets allow none); any other OPTIONS is a request like the rest: 401."""
    with target.client() as client:
        for path in (*PROTECTED, f"/agents/jobs/{uuid.uuid4()}"):
            response = client.options(path, headers=headers)
            assert_envelope(response, 401, "missing_credentials")


# --- request body size ------------------------------------------------------------------------


def worker_pids(target: Target) -> list[int]:
    """uvicorn's worker processes: the children of the server's master process."""
    (server,) = [p for p in target.processes if p.name.startswith("uvicorn-")]
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def post_raw(
    target: Target,
    headers: dict[str, str],
    body: Iterator[bytes],
    *,
    chunked: bool,
) -> tuple[int, dict[str, str], bytes, int]:
    """POST /agents/run over a plain socket, sending the body from a thread while the answer
    is read, so an answer that comes before the body has been sent is seen. Returns the
    status, headers, body of the answer and how many body bytes went out."""
    address = urlsplit(target.url)
    sock = socket.create_connection((address.hostname, address.port), timeout=60)
    head = [
        "POST /agents/run HTTP/1.1",
        f"Host: {address.netloc}",
        "Content-Type: application/json",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    if chunked:
        head.append("Transfer-Encoding: chunked")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    sent = 0

    def send_body() -> None:
        nonlocal sent
        try:
            for chunk in body:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                sent += len(chunk)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed the connection

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    received = b""
    try:
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            assert data, f"connection closed without an answer: {received!r}"
            received += data
        raw_head, _, content = received.partition(b"\r\n\r\n")
        status_line, *lines = raw_head.decode().split("\r\n")
        answer = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines)
        }
        while len(content) < int(answer.get("content-length", "0")):
            data = sock.recv(65536)
            if not data:
                break
            content += data
    finally:
        sock.close()
        sender.join(30)
    return int(status_line.split()[1]), answer, content, sent


def assert_too_large(status: int, headers: dict[str, str], content: bytes) -> None:
    assert status == 413, (status, content[:300])
    body = json.loads(content)
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == "payload_too_large", body
    assert body["error"]["request_id"] == headers["x-request-id"] == "big-body"


def test_a_declared_oversized_body_is_refused_before_it_is_read(target: Target) -> None:
    headers = {
        **target.auth(),
        "X-Request-ID": "big-body",
        "Content-Length": str(64 * MiB),
    }

    def body() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * MiB

    started = time.monotonic()
    status, answer, content, sent = post_raw(target, headers, body(), chunked=False)
    assert_too_large(status, answer, content)
    assert time.monotonic() - started < 10
    assert sent < 32 * MiB, sent


def test_a_chunked_body_is_cut_at_the_limit(target: Target) -> None:
    """No Content-Length to trust: the bytes are counted as they come, and the answer comes
    once they pass MAX_REQUEST_BODY_BYTES, without the server's memory taking the body."""
    before = {pid: peak_rss_kib(pid) for pid in worker_pids(target)}
    headers = {**target.auth(), "X-Request-ID": "big-body"}

    def body() -> Iterator[bytes]:
        for _ in range(48 * 16):  # 48 MiB in 64 KiB chunks
            yield b"x" * (64 * 1024)

    status, answer, content, sent = post_raw(target, headers, body(), chunked=True)
    after = {pid: peak_rss_kib(pid) for pid in worker_pids(target)}
    growth = max(after[pid] - before.get(pid, after[pid]) for pid in after)
    observed = f"{status}, {sent / MiB:.1f} MiB sent, peak memory +{growth / 1024:.1f} MiB"
    assert status == 413, observed
    assert_too_large(status, answer, content)
    assert sent < 24 * MiB, observed
    assert growth < 16 * 1024, observed
