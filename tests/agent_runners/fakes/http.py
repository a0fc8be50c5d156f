"""A loopback HTTP/1.1 server for faking model providers (standard library only).

It runs its own event loop in a daemon thread, so an SDK that blocks its caller's loop or
calls from worker threads can never deadlock against it. It records every request and every
client that hung up before a streamed response ended, which is how tests prove that a
cancelled or timed-out runner really closed its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class JsonReply:
    body: Any
    status: int = 200


@dataclass(frozen=True)
class StreamReply:
    """A `text/event-stream` body: each item is one already-encoded SSE event.

    With `stall_after` set, only that many events are sent; then the response is held open
    until the client hangs up (the way to test timeouts and cancellation).
    """

    events: list[bytes]
    stall_after: int | None = None


Reply = JsonReply | StreamReply
Handler = Callable[[Request], Reply]


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {payload}\n\n".encode()


class Hangups:
    """Counts clients that gave up on an answer before its end; thread-safe."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def record(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait(self, timeout: float) -> bool:
        """Block until at least one hang-up; call it from a worker thread."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.count == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True


@dataclass
class FakeHTTPServer:
    handler: Handler
    requests: list[Request] = field(default_factory=list)
    hangups: Hangups = field(default_factory=Hangups)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeHTTPServer:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def main() -> None:
                self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()
                async with self._server:
                    await self._server.serve_forever()

            try:
                loop.run_until_complete(main())
            except asyncio.CancelledError:
                pass
            finally:
                # Let the cancelled connection handlers finish before the loop goes away.
                if pending := asyncio.all_tasks(loop):
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.close()

        self._thread = threading.Thread(target=serve, name="fake-model-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake model server did not start within 10 s")
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None:

            def shut_down() -> None:
                # In the server's own thread, in one go: once the server is closed the loop
                # may end at any moment, and a client's keep-alive connection is still open.
                server.close()
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(shut_down)
        if self._thread is not None:
            self._thread.join(10)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                reply = self.handler(request)
                if isinstance(reply, JsonReply):
                    _write_json(writer, reply)
                    await writer.drain()
                elif not await self._stream(reader, writer, reply):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: StreamReply
    ) -> bool:
        """Send the events chunked; False when the client hung up before the end."""
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        try:
            for index, event in enumerate(reply.events):
                if index == reply.stall_after:
                    await writer.drain()
                    # Nothing more is sent: the only way out is the client closing the socket.
                    while await reader.read(65536):
                        pass
                    raise ConnectionResetError
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
                # Let a client see each event on its own, as from a real token stream.
                await asyncio.sleep(0.005)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        except ConnectionError:
            self.hangups.record()
            return False


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    line = await reader.readline()
    if not line.strip():
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readline()).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, target.split("?")[0], headers, body)


def _write_json(writer: asyncio.StreamWriter, reply: JsonReply) -> None:
    body = json.dumps(reply.body).encode()
    writer.write(
        b"HTTP/1.1 %d OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (reply.status, len(body), body)
    )
