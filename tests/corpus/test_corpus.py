"""The hostile-input corpus (cases.json), against the app and through nginx.

Every case gets the reason code it names (`ok`: allowed), never a 5xx, within 2 seconds;
through nginx, the reason is read from nginx's access log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.servers import Stack, exchange
from tests.support.asgi import answer, dummy_app
from tests.support.waiting import wait_until

CASES: list[dict[str, Any]] = json.loads(Path(__file__).with_name("cases.json").read_text())
LIMIT_SECONDS = 2.0
APP = dummy_app()


def header_pairs(case: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in case["headers"]]


def body_of(case: dict[str, Any]) -> bytes:
    return base64.b64decode(case["body"]) if case["body"] else b""


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_the_app_answers_each_hostile_request_with_its_expected_status_and_reason(
    case: dict[str, Any],
) -> None:
    got = asyncio.run(answer(APP, header_pairs(case), case["method"], body=body_of(case)))
    assert (got.status, got.reason) == (204 if case["reason"] == "ok" else 401, case["reason"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("corpus"))
    yield running
    running.stop()


def nginx_status(port: int, case: dict[str, Any], target: str) -> int | None:
    body = body_of(case)
    length = len(body) or case["content_length_without_body"]
    lines = [f"{case['method']} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in header_pairs(case)]
    if length:
        lines.append(b"Content-Length: %d" % length)
    raw = b"\r\n".join([*lines, b"Connection: close", b"", b""]) + body
    return exchange(port, raw, LIMIT_SECONDS)


def reason_logged(stack: Stack, target: str) -> str:
    """The `approov=` field of nginx's access log line for the request to `target`."""

    def logged() -> str | None:
        for line in stack.nginx.access_log().splitlines():
            if f" {target} HTTP/1.1" in line:
                return line.split(" approov=", 1)[1].split(" ", 1)[0] or "<empty>"
        return None

    reason = wait_until(logged, LIMIT_SECONDS, f"the access log line for {target}")
    return "" if reason == "<empty>" else reason


@pytest.mark.e2e
@pytest.mark.usefixtures("nginx_available")
@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_nginx_answers_each_hostile_request_in_time_and_lets_only_allows_reach_the_backend(
    stack: Stack, case: dict[str, Any]
) -> None:
    before = stack.backend_requests()
    target = f"/api/corpus?case={CASES.index(case)}"
    started = time.monotonic()
    status = nginx_status(stack.nginx.ports.nginx, case, target)
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
    if "nginx_refuses" in case:  # nginx's own 400: no subrequest, no reason to log
        assert status == 400, case["nginx_refuses"]
    else:
        assert reason_logged(stack, target) == case.get("reason_through_nginx", case["reason"])
