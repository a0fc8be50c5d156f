"""Helpers for the template tests: templates under real uvicorn (through forge_testing),
a cuttable TCP proxy, the templates' JWTs, an SSE reader that keeps comments, and raw
requests pinned to one connection."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forge_testing import TEMPLATES, Server, free_port, start_uvicorn
from forge_testing.tokens import JwtMinter

SECRET = "template-tests-secret-" + "x" * 32
AUDIENCE = "forge-app"
TOKENS = JwtMinter(SECRET, AUDIENCE, "forge-app")


# --------------------------------------------------------------------------- processes


def log_records(server: Server) -> list[dict[str, Any]]:
    """The JSON lines of a server's log (uvicorn's own and the app's)."""
    records = []
    for line in server.process.log_text().splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    return records


def pid_of_request(server: Server, request_id: str, within: float = 5.0) -> int:
    """Which worker served a request, from its access log line."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for record in log_records(server):
            if (
                record.get("event") == "request"
                and record.get("request_id") == request_id
            ):
                return int(record["pid"])
        time.sleep(0.05)
    raise AssertionError(f"no access log line for request {request_id}")


def start_template(
    module: str, *, cwd: Path, env: dict[str, str], workers: int = 1
) -> Server:
    """A template module under real uvicorn, started in `cwd` (where its SQLite file
    and dev secret land), with this interpreter and only the given app settings."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REDIS_URL", "JWT_", "PROMETHEUS_"))
    }
    return start_uvicorn(
        f"{module}:create_app",
        factory=True,
        log_dir=cwd / "logs",
        python=sys.executable,
        cwd=cwd,
        env={**inherited, **env},
        workers=workers,
        extra_args=["--app-dir", str(TEMPLATES)],
        name=module,
    )


# --------------------------------------------------------------------------- services


class TcpProxy:
    """Loopback TCP proxy that a test can cut (connections dropped, port refusing)
    and restore: "Redis unreachable" without touching the shared Redis."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            doomed = [*self.sockets, *([self.listener] if self.listener else [])]
            self.sockets.clear()
            self.listener = None
        for sock in doomed:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(src, dst), daemon=True
                ).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# --------------------------------------------------------------------------- tokens


# --------------------------------------------------------------------------- SSE


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseRead:
    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


async def read_sse(lines: AsyncIterator[str], stop_after: int | None = None) -> SseRead:
    """Parse text/event-stream by hand, keeping comments (heartbeats) that SSE client
    libraries drop."""
    result = SseRead()
    current = SseEvent()
    data_lines: list[str] = []
    async for line in lines:
        if line == "":
            if data_lines or current.event != "message":
                current.data = "\n".join(data_lines)
                result.events.append(current)
                if stop_after is not None and len(result.events) >= stop_after:
                    return result
            current, data_lines = SseEvent(), []
            continue
        if line.startswith(":"):
            result.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            current.event = value
        elif name == "data":
            data_lines.append(value)
        elif name == "id":
            current.id = value
    return result


# --------------------------------------------------------------------------- misc


def raw_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    conn: http.client.HTTPConnection | None = None,
    json_body: Any = None,
) -> tuple[http.client.HTTPConnection, int, bytes, str]:
    """One request on a kept-alive connection (to pin requests to one worker).
    Returns the connection, status, body and the echoed request id."""
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    request_id = uuid.uuid4().hex
    all_headers = {**headers, "X-Request-ID": request_id}
    body = None
    if json_body is not None:
        body = json.dumps(json_body).encode()
        all_headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=all_headers)
    response = conn.getresponse()
    data = response.read()
    assert response.getheader("x-request-id") == request_id
    return conn, response.status, data, request_id
