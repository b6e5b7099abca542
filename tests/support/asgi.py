"""Call an ASGI app directly with raw header bytes: no HTTP layer cleans them up first."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from typing import Any, TextIO

from authsvc.config import Settings
from authsvc.http.app import AsgiApp, AuthService, Message, create_app
from authsvc.observe.decisionlog import DecisionLog
from authsvc.runtime import Runtime
from tests.support.tokens import DUMMY_SECRET


def dummy_app(log: TextIO | None = None) -> AuthService:
    """The app with Approov's dummy secret and default settings, its decision lines to `log`."""
    runtime = Runtime.from_settings(Settings(secret=DUMMY_SECRET))
    return create_app(runtime, decision_log=DecisionLog(log if log is not None else io.StringIO()))


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    """Lower-case names; a repeated header keeps its last value."""

    @property
    def reason(self) -> str | None:
        return self.headers.get("x-approov-reason")


async def answer(
    app: AsgiApp,
    headers: list[tuple[bytes, bytes]],
    method: str = "GET",
    path: str = "/auth",
    *,
    body: bytes = b"",
    query: bytes = b"",
    body_chunks: list[bytes] | None = None,
    body_stalls: bool = False,
    timeout: float = 2.0,
) -> Answer:
    """What `app` answers (headers passed as a server would: lower-case names, raw bytes).

    The body comes in one event, or as `body_chunks`; `body_stalls`: after them, the client
    sends nothing more."""
    sent: list[Message] = []
    chunks = list(body_chunks) if body_chunks is not None else [body]

    async def receive() -> Message:
        if chunks:
            chunk = chunks.pop(0)
            more = bool(chunks) or body_stalls
            return {"type": "http.request", "body": chunk, "more_body": more}
        await asyncio.Event().wait()  # a stalled client: no event ever comes
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=timeout)
    start = sent[0]
    received = {name.decode("latin-1"): value.decode("latin-1") for name, value in start["headers"]}
    return Answer(start["status"], received)
