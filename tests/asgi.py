"""Call an ASGI app directly with raw header bytes: no HTTP layer cleans them up first."""

from __future__ import annotations

import asyncio
from typing import Any

from authsvc.app import AsgiApp, Message


async def answer_status(
    app: AsgiApp,
    headers: list[tuple[bytes, bytes]],
    method: str = "GET",
    path: str = "/auth",
    *,
    body: bytes = b"",
    timeout: float = 2.0,
) -> int:
    """The status `app` answers with (headers as the server would pass them: lower-case names)."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

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
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=timeout)
    status: int = sent[0]["status"]
    return status
