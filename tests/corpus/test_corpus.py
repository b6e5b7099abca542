"""The hostile-input corpus (cases.json), against the app and through nginx.

Every case gets the outcome it names (allow / deny), never a 5xx, within 2 seconds.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authsvc.app import Message, create_app
from authsvc.config import Settings
from authsvc.decisionlog import DecisionLog
from tests.e2e.servers import Stack
from tests.tokens import DUMMY_SECRET

CASES: list[dict[str, Any]] = json.loads(Path(__file__).with_name("cases.json").read_text())
LIMIT_SECONDS = 2.0
APP = create_app(Settings(secret=DUMMY_SECRET), decision_log=DecisionLog(io.StringIO()))


def header_pairs(case: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in case["headers"]]


def body_of(case: dict[str, Any]) -> bytes:
    return base64.b64decode(case["body"]) if case["body"] else b""


async def app_status(case: dict[str, Any]) -> int:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body_of(case), "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(name.lower(), value) for name, value in header_pairs(case)]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": case["method"],
        "scheme": "http",
        "path": "/auth",
        "raw_path": b"/auth",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await asyncio.wait_for(APP(scope, receive, send), timeout=LIMIT_SECONDS)
    status: int = sent[0]["status"]
    return status


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case_against_the_app(case: dict[str, Any]) -> None:
    status = asyncio.run(app_status(case))
    assert status == (204 if case["expect"] == "allow" else 401)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("corpus"))
    yield running
    running.stop()


def nginx_status(port: int, case: dict[str, Any]) -> int | None:
    body = body_of(case)
    length = len(body) or case["content_length_without_body"]
    lines = [f"{case['method']} /api/corpus HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in header_pairs(case)]
    if length:
        lines.append(b"Content-Length: %d" % length)
    raw = b"\r\n".join([*lines, b"Connection: close", b"", b""]) + body
    with socket.create_connection(("127.0.0.1", port), timeout=LIMIT_SECONDS) as connection:
        connection.sendall(raw)
        received = b""
        while b"\r\n" not in received:
            chunk = connection.recv(4096)
            if not chunk:
                return None
            received += chunk
    return int(received.split(b" ", 2)[1])


@pytest.mark.e2e
@pytest.mark.usefixtures("nginx_available")
@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case_through_nginx(stack: Stack, case: dict[str, Any]) -> None:
    before = stack.backend_requests()
    started = time.monotonic()
    status = nginx_status(stack.nginx.ports.nginx, case)
    assert time.monotonic() - started < LIMIT_SECONDS
    assert status is not None, "connection closed without an answer"
    assert status < 500, status
    expect = case.get("expect_through_nginx", case["expect"])
    if expect == "allow":
        assert status == 200
        assert stack.backend_requests() == before + 1
    else:
        assert 400 <= status < 500
        assert stack.backend_requests() == before
