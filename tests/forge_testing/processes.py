"""Real server processes (uvicorn, workers, Redis) in their own sessions, their logs kept
for the report of a failing test, and polling with a deadline (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from .databases import SERVICES_HINT


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry on a lost race)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Polls until `check` holds; a deadline, never a fixed sleep, decides."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f}s")
        time.sleep(0.05)


async def wait_for_async(
    check: Callable[[], Awaitable[object]],
    what: str,
    timeout: float = 30.0,
    pause: float = 0.1,
) -> None:
    """`wait_for` for a coroutine check, from a test's event loop."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f}s")
        await asyncio.sleep(pause)


# --- processes ----------------------------------------------------------------------------


@dataclass
class ManagedProcess:
    """A server process in its own session, its output in a log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)
    stopped_at: float | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self, tail_lines: int | None = None) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        if tail_lines is not None:
            text = "\n".join(text.splitlines()[-tail_lines:])
        return text

    def describe(self, tail_lines: int = 80) -> str:
        state = "running" if self.alive() else f"exited with {self.popen.returncode}"
        return (
            f"--- {self.name} (pid {self.pid}, {state}); log {self.log_path} ---\n"
            f"$ {' '.join(self.argv)}\n{self.log_text(tail_lines)}"
        )

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the whole group: no shutdown code runs, as when a node loses power."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the whole group (uvicorn's worker processes too), then SIGKILL."""
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.popen.wait(10)
        # Children that outlived their parent still hold the group id.
        self.signal_group(signal.SIGKILL)


# Every process started by the helpers, so a failing test's report can show their logs.
LIVE_PROCESSES: list[ManagedProcess] = []


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ManagedProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("wb") as log_file:
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process = ManagedProcess(name=name, argv=list(argv), log_path=log_path, popen=popen)
    LIVE_PROCESSES.append(process)
    return process


class StartupError(RuntimeError):
    pass


def wait_until(
    process: ManagedProcess, check: Callable[[], bool], what: str, timeout: float = 60.0
) -> None:
    """Polls `check` until it is true; fails with the process's log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while True:
        if not process.alive():
            raise StartupError(
                f"{process.name} exited before {what}\n{process.describe()}"
            )
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            raise StartupError(
                f"{process.name}: no {what} within {timeout:.0f}s\n{process.describe()}"
            )
        time.sleep(0.2)


@dataclass
class Server:
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()


def _port_taken(process: ManagedProcess) -> bool:
    return "address already in use" in process.log_text().lower()


def _serve(
    name: str,
    argv_on: Callable[[int], list[str]],
    ready: Callable[[ManagedProcess, int], None],
    *,
    port: int | None,
    log_dir: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Server:
    """Spawns `argv_on(port)` and waits for `ready`; on a free port unless `port` is
    given, trying another when a race lost the one it picked."""
    for _attempt in range(3 if port is None else 1):
        chosen = free_port() if port is None else port
        process = spawn(name, argv_on(chosen), log_dir=log_dir, cwd=cwd, env=env)
        try:
            ready(process, chosen)
            return Server(process=process, port=chosen)
        except StartupError:
            process.stop()
            if port is not None or not _port_taken(process):
                raise
    raise StartupError(f"{name}: no free port after 3 attempts")


def start_uvicorn(
    app: str,
    *,
    log_dir: Path,
    python: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    factory: bool = False,
    health_path: str = "/health",
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
    name: str = "uvicorn",
    port: int | None = None,
) -> Server:
    """Starts `python -m uvicorn APP` on a free port (or on `port`: a service coming back
    where its clients expect it) and waits until `health_path` answers 200 (with several
    workers, until each has started)."""

    def argv_on(port: int) -> list[str]:
        return [
            str(python),
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            *(["--factory"] if factory else []),
            *extra_args,
        ]

    def ready(process: ManagedProcess, port: int) -> None:
        def healthy() -> bool:
            url = f"http://127.0.0.1:{port}{health_path}"
            return httpx.get(url, timeout=2).status_code == 200

        wait_until(process, healthy, f"200 from {health_path}", timeout)
        # The socket is shared: the first answer may come before every worker is up.
        if workers > 1:
            started = functools.partial(_workers_started, process, workers)
            wait_until(process, started, "all workers", timeout)

    return _serve(name, argv_on, ready, port=port, log_dir=log_dir, cwd=cwd, env=env)


def _workers_started(process: ManagedProcess, workers: int) -> bool:
    return process.log_text().count("Application startup complete") >= workers


def start_redis_server(log_dir: Path, name: str = "redis") -> Server:
    """A private, throwaway Redis (no persistence) for tests that stop it on purpose."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(f"redis-server is not on PATH; {SERVICES_HINT}", pytrace=False)

    def argv_on(port: int) -> list[str]:
        return [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]

    def ready(process: ManagedProcess, port: int) -> None:
        def pong() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        wait_until(process, pong, "PONG", 30)

    return _serve(name, argv_on, ready, port=None, log_dir=log_dir)
