"""Helpers for the template tests: real uvicorn processes, throwaway PostgreSQL
databases and Redis key prefixes, a cuttable TCP proxy, JWTs and an SSE reader.

FORGE_PG_URL and FORGE_REDIS_URL come from `scripts/services start`; a missing one is a
failure, never a skip.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import jwt
import pytest
import redis

TEMPLATES = (
    Path(__file__).resolve().parents[2]
    / "skill"
    / "fastapi-forge"
    / "assets"
    / "templates"
)
SECRET = "template-tests-secret-" + "x" * 32
AUDIENCE = "forge-agent-api"


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run the tests through scripts/test"
            ' (or eval "$(scripts/services start)")'
        )
    return value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- processes


@dataclass
class Server:
    """A uvicorn process group started by a test; its stdout is a JSON log file."""

    proc: subprocess.Popen[bytes]
    port: int
    cwd: Path
    log_path: Path
    workers: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pid_of_request(self, request_id: str, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.log_records():
                if (
                    record.get("event") == "request"
                    and record.get("request_id") == request_id
                ):
                    return int(record["pid"])
            time.sleep(0.05)
        raise AssertionError(f"no access log line for request {request_id}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def start_server(
    module: str,
    *,
    app_dir: Path,
    cwd: Path,
    env: dict[str, str],
    workers: int = 1,
    timeout: float = 60.0,
) -> Server:
    port = free_port()
    log_path = cwd / f"uvicorn-{port}.log"
    full_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REDIS_URL", "JWT_"))
    }
    full_env.update(env)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        f"{module}:app",
        "--app-dir",
        str(app_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "info",
    ]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, port, cwd, log_path, workers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"uvicorn exited with {proc.returncode}:\n{server.log_text()}"
            )
        started = {
            record.get("pid")
            for record in server.log_records()
            if record.get("event") == "Application startup complete."
        }
        if len(started) >= workers:
            try:
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(
        f"uvicorn did not become healthy in {timeout} s:\n{server.log_text()}"
    )


# --------------------------------------------------------------------------- services


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (libpq URL), dropped afterwards."""

    admin = required_env("FORGE_PG_URL")
    name = f"forge_tpl_{uuid.uuid4().hex[:12]}"

    async def admin_exec(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_exec(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(admin)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    finally:
        asyncio.run(admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(redis url, key prefix); every key under the prefix is deleted afterwards."""
    url = required_env("FORGE_REDIS_URL")
    prefix = f"forge-tpl-{uuid.uuid4().hex[:12]}:"
    client = redis.Redis.from_url(url)
    client.ping()
    try:
        yield url, prefix
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


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


def make_token(
    subject: str | None = None,
    *,
    secret: str = SECRET,
    audience: str = AUDIENCE,
    expires_in: timedelta = timedelta(minutes=10),
    algorithm: str = "HS256",
) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": subject or f"user-{uuid.uuid4().hex[:8]}",
        "aud": audience,
        "iat": now,
        "exp": now + expires_in,
    }
    return jwt.encode(claims, secret, algorithm=algorithm)


def unsigned_token(subject: str = "mallory", audience: str = AUDIENCE) -> str:
    """`alg: none`, built by hand: PyJWT refuses to produce one for a real key."""

    def b64(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    exp = int((datetime.now(UTC) + timedelta(minutes=10)).timestamp())
    header = b64({"alg": "none", "typ": "JWT"})
    payload = b64({"sub": subject, "aud": audience, "exp": exp})
    return f"{header}.{payload}."


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when absent)."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match.group(2))
    return total


def raw_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    conn: http.client.HTTPConnection | None = None,
) -> tuple[http.client.HTTPConnection, int, bytes, str]:
    """One request on a kept-alive connection (to pin a request to one worker).
    Returns the connection, status, body and the echoed request id."""
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    request_id = uuid.uuid4().hex
    conn.request(method, path, headers={**headers, "X-Request-ID": request_id})
    response = conn.getresponse()
    body = response.read()
    assert response.getheader("x-request-id") == request_id
    return conn, response.status, body, request_id


async def wait_for_job(
    client: httpx.AsyncClient,
    job_id: str,
    headers: dict[str, str],
    until: set[str],
    within: float = 20.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"/agents/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in until:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {until}: {job}")
