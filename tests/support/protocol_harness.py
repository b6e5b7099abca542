"""authsvc's HTTP/1.1 connection (CheckProtocol) on an in-memory transport: bytes in, in any
pieces, and the responses it wrote, parsed by llhttp's response parser. Shared by the property
tests of tests/unit/http/test_protocol.py and the fuzz target tests/fuzz/fuzz_protocol.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.server import ServerState

from authsvc.http.app import AuthService
from authsvc.http.protocol import CheckProtocol, serving


class MemoryTransport:
    """What uvicorn's protocol asks of a transport, kept in memory."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return 0


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""


class _ResponseParser:
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self._parser = httptools.HttpResponseParser(self)

    def feed(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.responses.append(Response(0))

    def on_status(self, status: bytes) -> None:
        self.responses[-1].status = self._parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.responses[-1].headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.responses[-1].body += body


def parse_responses(data: bytes) -> list[Response]:
    """The responses in `data`; raises httptools.HttpParserError if any is malformed. A 204 or a
    response with Content-Length has a known end; HEAD answers carry Content-Length: 0 here."""
    parser = _ResponseParser()
    parser.feed(data)
    return parser.responses


class Connection:
    """One client connection to CheckProtocol serving `app`, in the running event loop."""

    def __init__(self, app: AuthService) -> None:
        config = Config(
            app=app,
            http=serving(app.checks),
            ws="none",
            lifespan="off",
            access_log=False,
            log_config=None,
            proxy_headers=False,
        )
        config.load()
        self.state = ServerState()
        self.protocol = CheckProtocol(
            config=config, server_state=self.state, app_state={}, checks=app.checks
        )
        self.transport = MemoryTransport()
        self.protocol.connection_made(self.transport)  # type: ignore[arg-type]

    async def send(self, pieces: Iterable[bytes]) -> None:
        """Each piece as one read, the event loop turning between them and after the last until
        the app's tasks are done."""
        for piece in pieces:
            if self.transport.closed:
                break
            self.protocol.data_received(piece)
            await self.settle()

    async def settle(self) -> None:
        for _ in range(1000):
            await asyncio.sleep(0)
            if not self.state.tasks:
                return
        raise AssertionError("the app's tasks never finished")

    @property
    def output(self) -> bytes:
        return bytes(self.transport.written)


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` cut at `cuts` (each taken modulo its length + 1): the reads a server may see."""
    points = sorted({cut % (len(data) + 1) for cut in cuts} - {0, len(data)})
    return [data[start:end] for start, end in zip([0, *points], [*points, len(data)], strict=True)]
