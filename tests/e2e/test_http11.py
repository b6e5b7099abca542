"""The HTTP/1.1 rules (RFC 9112) the real server keeps now that checks are answered from the
parser's callbacks, through raw sockets. The same rules, split at every byte and mixed at
random, are in tests/unit/http/test_protocol.py; a stopping worker closes its idle
connections within DRAIN_SECONDS (tests/e2e/test_operations.py)."""

from __future__ import annotations

import socket
import time

import pytest

from authsvc.http.protocol import HEAD_TIMEOUT_SECONDS, MAX_HEAD_BYTES
from tests.e2e.servers import Authsvc
from tests.support.protocol_harness import Response, parse_responses
from tests.support.tokens import bound_token
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def check(
    *, extra: bytes = b"", request_line: bytes = b"GET /auth HTTP/1.1", rid: bytes = b"r"
) -> bytes:
    credentials = b"Approov-Token: %s\r\nAuthorization: Bearer abc\r\n" % bound_token().encode()
    return (
        request_line + b"\r\nHost: authsvc\r\nX-Request-ID: " + rid + b"\r\n" + credentials + extra
    )


def converse(
    port: int, pieces: list[bytes], answers: int, *, pause: float = 0.0
) -> tuple[list[Response], bool]:
    """Send `pieces` (with `pause` seconds between them), read until `answers` responses came,
    then whether the server closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            conn.sendall(piece)
            time.sleep(pause)
        received = b""
        while len(parse_responses(received)) < answers or not received.endswith(b"\r\n\r\n"):
            chunk = conn.recv(65536)  # socket.timeout: the server hung
            if not chunk:
                return parse_responses(received), True
            received += chunk
        conn.settimeout(0.3)
        try:
            closed = conn.recv(1) == b""
        except TimeoutError:
            closed = False
        return parse_responses(received), closed


def statuses(responses: list[Response]) -> list[tuple[int, bytes | None]]:
    return [(r.status, r.headers.get(b"x-request-id")) for r in responses]


def test_pipelined_requests_are_answered_in_order_one_answer_each(authsvc: Authsvc) -> None:
    pipelined = (
        check(rid=b"1", extra=b"\r\n")
        + b"GET /auth HTTP/1.1\r\nX-Request-ID: 2\r\n\r\n"
        + b"GET /readyz HTTP/1.1\r\n\r\n"
        + check(rid=b"4", extra=b"\r\n")
    )
    responses, closed = converse(authsvc.port, [pipelined], 4)
    assert statuses(responses) == [(204, b"1"), (401, b"2"), (200, None), (204, b"4")]
    assert not closed


@pytest.mark.parametrize("step", [1, 7, 53])
def test_a_request_split_at_byte_boundaries_is_answered_the_same(
    authsvc: Authsvc, step: int
) -> None:
    raw = check(extra=b"\r\n")
    pieces = [raw[i : i + step] for i in range(0, len(raw), step)]
    responses, closed = converse(authsvc.port, pieces, 1, pause=0.001)
    assert (statuses(responses), closed) == ([(204, b"r")], False)


SMUGGLED = b"GET /auth HTTP/1.1\r\n\r\n"  # as a body: never a request of its own


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("Content-Length", b"Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED)),
        (
            "chunked",
            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED),
        ),
    ],
)
def test_a_body_on_a_check_is_consumed_never_read_as_the_next_request(
    authsvc: Authsvc, case: str, body: bytes
) -> None:
    raw = check(request_line=b"POST /auth HTTP/1.1", extra=body)
    raw += b"GET /auth HTTP/1.1\r\nX-Request-ID: next\r\n\r\n"
    responses, _ = converse(authsvc.port, [raw], 2)
    assert statuses(responses) == [(204, b"r"), (401, b"next")], case


def test_a_body_awaiting_100_continue_gets_the_answer_and_a_close(authsvc: Authsvc) -> None:
    raw = check(
        request_line=b"POST /auth HTTP/1.1",
        extra=b"Expect: 100-continue\r\nContent-Length: 100\r\n\r\n",
    )
    responses, closed = converse(authsvc.port, [raw], 1)
    assert [(r.status, r.headers.get(b"connection")) for r in responses] == [(204, b"close")]
    assert closed


@pytest.mark.parametrize(
    ("case", "framing"),
    [
        (
            "Content-Length and Transfer-Encoding",
            b"Content-Length: 5\r\nTransfer-Encoding: chunked",
        ),
        ("two different Content-Lengths", b"Content-Length: 5\r\nContent-Length: 6"),
        ("chunked not last", b"Transfer-Encoding: chunked, gzip"),
    ],
)
def test_framing_that_cannot_be_trusted_gets_400_and_a_close(
    authsvc: Authsvc, case: str, framing: bytes
) -> None:
    raw = check(request_line=b"POST /auth HTTP/1.1", extra=framing + b"\r\n\r\nhello")
    responses, closed = converse(authsvc.port, [raw], 1)
    assert ([r.status for r in responses], closed) == ([400], True), case


@pytest.mark.parametrize("where", ["header", "request line"])
def test_an_oversized_head_gets_4xx_and_a_close_never_an_answer(
    authsvc: Authsvc, where: str
) -> None:
    """An 8 MB header was once buffered whole and answered: the head is bounded."""
    big = b"a" * (8 << 20)
    head = (
        b"GET /auth HTTP/1.1\r\nX-Big: " + big + b"\r\n\r\n"
        if where == "header"
        else b"GET /auth?" + big + b" HTTP/1.1\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", authsvc.port), timeout=3) as conn:
        sent = 0
        try:
            while sent < len(head):
                sent += conn.send(head[sent : sent + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < len(head)  # refused before it was all read
        try:
            received = conn.recv(4096)
        except ConnectionResetError:
            received = b""  # the 431 may be lost to the reset of the unread rest
    assert received == b"" or received.startswith(b"HTTP/1.1 4"), received[:80]


def test_a_head_of_the_60kb_token_case_is_well_under_the_limit() -> None:
    assert MAX_HEAD_BYTES >= 4 * 60_000


def test_heads_that_never_complete_are_closed_after_the_head_timeout(authsvc: Authsvc) -> None:
    """Once, 0 of 300 slow connections were ever closed."""
    slow = [socket.create_connection(("127.0.0.1", authsvc.port)) for _ in range(300)]
    try:
        for conn in slow:
            conn.sendall(b"GET /auth HTTP/1.1\r\nApproov-To")
            conn.setblocking(False)
        responses, _ = converse(authsvc.port, [check(extra=b"\r\n")], 1)
        assert statuses(responses) == [(204, b"r")]  # others are not delayed

        def all_closed() -> bool:
            for conn in slow:
                try:
                    if conn.recv(1) != b"":
                        return False
                except BlockingIOError:
                    return False
                except ConnectionResetError:
                    pass
            return True

        wait_until(all_closed, timeout=HEAD_TIMEOUT_SECONDS + 5, what="slow heads closed")
    finally:
        for conn in slow:
            conn.close()


@pytest.mark.parametrize(
    ("case", "request_line", "extra", "close"),
    [
        ("HEAD", b"HEAD /auth HTTP/1.1", b"", False),
        ("HTTP/1.0", b"GET /auth HTTP/1.0", b"", True),
        ("HTTP/1.0 keep-alive", b"GET /auth HTTP/1.0", b"Connection: keep-alive\r\n", True),
        ("Connection: close", b"GET /auth HTTP/1.1", b"Connection: close\r\n", True),
    ],
)
def test_head_http_1_0_and_connection_close(
    authsvc: Authsvc, case: str, request_line: bytes, extra: bytes, close: bool
) -> None:
    responses, closed = converse(
        authsvc.port, [check(request_line=request_line, extra=extra + b"\r\n")], 1
    )
    assert [(r.status, r.body) for r in responses] == [(204, b"")], case
    assert closed is close
    assert (responses[0].headers.get(b"connection") == b"close") is close


@pytest.mark.parametrize(
    ("case", "first"),
    [
        ("Upgrade: websocket", check(extra=b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")),
        ("CONNECT", check(request_line=b"CONNECT /auth HTTP/1.1", extra=b"\r\n")),
    ],
)
def test_a_request_after_an_upgrade_is_never_dropped_on_an_open_connection(
    authsvc: Authsvc, case: str, first: bytes
) -> None:
    """Once the request after it was silently dropped while the connection stayed open."""
    responses, closed = converse(authsvc.port, [first + check(rid=b"after", extra=b"\r\n")], 1)
    assert [r.headers.get(b"connection") for r in responses] == [b"close"], case
    assert closed
