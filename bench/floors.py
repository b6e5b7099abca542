"""The floors of `make bench`: services that answer 204 to every check and verify nothing, so
each run shows the least an HTTP hop to a Python process can cost beside authsvc.

- `python bench/floors.py protocol HOST:PORT PROCESSES`: uvloop and httptools (llhttp), one
  `asyncio.Protocol` that answers inside the parser's callback; PROCESSES processes sharing
  the port (SO_REUSEPORT). The least a Python check service can do per request.
- `floors:asgi_app`: a bare ASGI app (two `send` calls), for gunicorn with uvicorn's worker:
  what an ASGI server adds.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httptools
import uvloop

NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
NO_CONTENT_CLOSE = b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"


class FloorProtocol(asyncio.Protocol):
    """Parses with llhttp, answers each request from `on_message_complete`."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._transport: Any = None  # uvloop's transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._transport.close()

    def on_message_complete(self) -> None:
        if self._parser.should_keep_alive():
            self._transport.write(NO_CONTENT)
        else:
            self._transport.write(NO_CONTENT_CLOSE)
            self._transport.close()


def serve_protocol(host: str, port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    listener.listen(1024)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(FloorProtocol, sock=listener)
        await server.serve_forever()

    uvloop.run(main())


async def asgi_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] != "protocol":
        print("usage: floors.py protocol HOST:PORT PROCESSES", file=sys.stderr)
        return 2
    host, port = argv[2].rsplit(":", 1)
    for _ in range(int(argv[3]) - 1):
        if os.fork() == 0:
            break
    serve_protocol(host, int(port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
