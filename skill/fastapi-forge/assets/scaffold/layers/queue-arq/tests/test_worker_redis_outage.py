"""The worker process when Redis goes away: a short outage is ridden out (the worker then
runs the next job), a long one ends the process with status 1 for its supervisor.

Redis "goes away" by closing a TCP proxy between the worker and the test Redis, which drops
the worker's connections and refuses new ones, as a stopped Redis would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from .conftest import SettingsFactory
from .helpers import app_client, free_port, settings_env
from .test_jobs import submit, wait_for

pytestmark = pytest.mark.uses_database


class RedisProxy:
    """Forwards 127.0.0.1:<port> to the test Redis until `stop()`; `start()` again later."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target_host = parts.hostname or "127.0.0.1"
        self.target_port = parts.port or 6379
        self.port = free_port()
        self.url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(
            self.pipe(reader, up_writer), self.pipe(up_reader, writer), return_exceptions=True
        )

    async def pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
            self.writers.discard(writer)


async def start_worker(env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        # An empty folder as cwd: no `.env` of the developer's reaches the worker.
        return subprocess.Popen(  # noqa: ASYNC220 - a long-lived child
            [sys.executable, "-m", "forge_app.worker"],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_for_log(
    process: subprocess.Popen[bytes], log: Path, text: str, within: float
) -> None:
    deadline = time.monotonic() + within
    while text not in read(log):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                f"no {text!r} in the worker's log (exit {process.poll()}):\n{read(log)}"
            )
        await asyncio.sleep(0.1)


def read(log: Path) -> str:
    return log.read_text(errors="replace")


@contextlib.contextmanager
def stopped_at_exit(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def test_short_outage_is_ridden_out_and_jobs_run_after_it(
    make_settings: SettingsFactory, headers: dict[str, str], tmp_path: Path
) -> None:
    settings = make_settings()
    proxy = RedisProxy(settings.redis_url)
    await proxy.start()
    worker_settings = settings.model_copy(update={"redis_url": proxy.url, "log_json": False})
    env = {**os.environ, **settings_env(worker_settings), "WORKER_REDIS_OUTAGE_SECONDS": "60"}
    log = tmp_path / "worker.log"
    process = await start_worker(env, log, tmp_path)
    with stopped_at_exit(process):
        await wait_for_log(process, log, "Starting worker", within=60)
        await proxy.stop()
        await wait_for_log(process, log, "redis_unavailable", within=30)
        await asyncio.sleep(2)
        assert process.poll() is None, read(log)
        await proxy.start()
        await wait_for_log(process, log, "redis_reconnected", within=30)
        async with app_client(settings) as client:
            job_id = await submit(client, headers, "after the outage")
            job = await wait_for(client, job_id, headers, {"completed", "failed"}, within=30)
        assert job["status"] == "completed", job
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0, read(log)
    await proxy.stop()


async def test_long_outage_ends_the_worker_with_status_1(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings()
    proxy = RedisProxy(settings.redis_url)
    await proxy.start()
    worker_settings = settings.model_copy(update={"redis_url": proxy.url, "log_json": False})
    env = {**os.environ, **settings_env(worker_settings), "WORKER_REDIS_OUTAGE_SECONDS": "3"}
    log = tmp_path / "worker.log"
    process = await start_worker(env, log, tmp_path)
    with stopped_at_exit(process):
        await wait_for_log(process, log, "Starting worker", within=60)
        await proxy.stop()
        stopped = time.monotonic()
        assert await asyncio.to_thread(process.wait, 60) == 1, read(log)
        assert time.monotonic() - stopped >= 3
        output = read(log)
    assert "redis_unavailable" in output
    assert "redis_outage: giving up, exit status 1" in output
    assert "Traceback" not in output
