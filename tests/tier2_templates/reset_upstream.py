"""An upstream that misbehaves at the TCP level, for the gateway tests: it reads a
request head and then resets the connection (RST, not FIN), at the point the path
names. Raw asyncio, because no HTTP server lets an app do this on purpose.

    /reset/before-headers   reset before any byte of a response
    /reset/mid-body         status line and headers, part of the body, then reset
    anything else           a 200 JSON answer (the health check)

Run: python reset_upstream.py PORT
"""

import asyncio
import socket
import struct
import sys

LINGER_ZERO = struct.pack("ii", 1, 0)  # close() then sends RST
# `python reset_upstream.py PORT accept`: every connection is reset as it is accepted.
RESET_ON_ACCEPT = sys.argv[2:] == ["accept"]


def reset(writer: asyncio.StreamWriter) -> None:
    sock: socket.socket = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    writer.transport.abort()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    if RESET_ON_ACCEPT:
        reset(writer)
        return
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    target = head.split(b" ", 2)[1]
    if target.endswith(b"/reset/before-headers"):
        reset(writer)
        return
    if target.endswith(b"/reset/mid-body"):
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n"
            b"\r\n" + b"x" * 100
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        reset(writer)
        return
    body = b'{"status": "ok"}'
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
