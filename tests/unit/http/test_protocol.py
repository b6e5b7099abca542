"""CheckProtocol, in process: checks answered from the parser's callbacks keep every HTTP/1.1
rule the ASGI path kept (RFC 9112), however the bytes arrive. The same rules are pinned
through the real server in tests/e2e/test_http11.py."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import authsvc.http.protocol
from authsvc.config import Settings
from authsvc.http.app import create_app
from authsvc.http.protocol import MAX_HEAD_BYTES
from authsvc.observe.decisionlog import DecisionLog
from authsvc.policy import BindingMode
from authsvc.runtime import Runtime
from tests.app.test_signing_http import NGINX_CONTEXT
from tests.support.asgi import dummy_app
from tests.support.protocol_harness import Connection, Response, parse_responses, split
from tests.support.signatures import ipk_token, request, sign, signed_post
from tests.support.tokens import DUMMY_SECRET, bound_token, pay_for


@dataclass(frozen=True)
class Exchange:
    """A request, and what its answer must be."""

    name: str
    raw: bytes
    status: int
    check: bool = True
    """A check route: its answer echoes X-Request-ID."""


def check(
    name: str, status: int, *, method: bytes = b"GET", path: bytes = b"/auth", extra: bytes = b""
) -> Exchange:
    head = b"%s %s HTTP/1.1\r\nHost: authsvc\r\n" % (method, path)
    return Exchange(name, head + b"X-Request-ID: {id}\r\n" + extra, status)


def exchanges() -> list[Exchange]:
    """Minted when a test runs: a token minted at collection could expire before it is used."""
    credentials = b"Approov-Token: %s\r\nAuthorization: Bearer abc\r\n" % bound_token().encode()
    return [
        check("valid", 204, extra=credentials + b"\r\n"),
        check("no token", 401, extra=b"\r\n"),
        check("HEAD", 204, method=b"HEAD", extra=credentials + b"\r\n"),
        check("Envoy's appended path", 200, path=b"/auth/api/x?q=1", extra=credentials + b"\r\n"),
        check("a body", 204, method=b"POST", extra=credentials + b"Content-Length: 5\r\n\r\nhello"),
        check(
            "a chunked body",
            401,
            method=b"POST",
            extra=b"Transfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\n",
        ),
        Exchange("health", b"GET /healthz HTTP/1.1\r\nHost: authsvc\r\n\r\n", 200, check=False),
        Exchange("readiness", b"GET /readyz HTTP/1.1\r\nHost: authsvc\r\n\r\n", 200, check=False),
    ]


def served(pieces: list[bytes]) -> tuple[list[Response], bool]:
    """The responses to `pieces` sent in turn on one connection, and whether it was closed."""

    async def run() -> tuple[list[Response], bool]:
        connection = Connection(dummy_app())
        await connection.send(pieces)
        return parse_responses(connection.output), connection.transport.closed

    return asyncio.run(run())


def requests_of(chosen: list[Exchange]) -> bytes:
    return b"".join(exchange.raw.replace(b"{id}", b"r%d" % i) for i, exchange in enumerate(chosen))


def answers(responses: list[Response]) -> list[tuple[int, bytes | None]]:
    return [(response.status, response.headers.get(b"x-request-id")) for response in responses]


def expected(chosen: list[Exchange]) -> list[tuple[int, bytes | None]]:
    return [(e.status, b"r%d" % i if e.check else None) for i, e in enumerate(chosen)]


@settings(max_examples=150, deadline=None)
@given(
    picks=st.lists(st.integers(0, 7), min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_pipelined_requests_split_anywhere_get_one_answer_each_in_order(
    picks: list[int], cuts: list[int]
) -> None:
    """Checks (answered in the callbacks) and app routes (an ASGI task) pipelined in any mix,
    the bytes cut at any points: each request gets its own answer, in request order."""
    pool = exchanges()
    chosen = [pool[pick] for pick in picks]
    responses, closed = served(split(requests_of(chosen), cuts))
    assert answers(responses) == expected(chosen)
    assert not closed


def test_every_byte_boundary_of_a_check_gives_the_same_answer() -> None:
    raw = requests_of([exchanges()[0]])
    for cut in range(1, len(raw)):
        responses, _ = served([raw[:cut], raw[cut:]])
        assert answers(responses) == [(204, b"r0")], cut


def test_a_body_on_a_check_is_never_read_as_the_next_request() -> None:
    smuggled = b"GET /auth HTTP/1.1\r\nHost: x\r\n\r\n"
    first = b"POST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
    responses, _ = served([first + smuggled])
    assert [response.status for response in responses] == [401]


@pytest.mark.parametrize(
    ("case", "framing"),
    [
        (
            "Content-Length and Transfer-Encoding",
            b"Content-Length: 5\r\nTransfer-Encoding: chunked",
        ),
        ("two different Content-Lengths", b"Content-Length: 5\r\nContent-Length: 6"),
        ("a Transfer-Encoding llhttp does not know", b"Transfer-Encoding: gzip"),
    ],
)
def test_framing_llhttp_refuses_gets_400_and_a_close(case: str, framing: bytes) -> None:
    raw = b"POST /auth HTTP/1.1\r\nHost: x\r\n%s\r\n\r\nhello" % framing
    responses, closed = served([raw])
    assert ([response.status for response in responses], closed) == ([400], True), case


def test_bytes_llhttp_refuses_behind_app_requests_get_their_400_after_the_answers_owed() -> None:
    """Found by the fuzz target: uvicorn wrote the 400 ahead of the app's answers (a client
    reads it as the answer to its first request), then the app wrote after the close."""
    raw = requests_of([exchanges()[6], exchanges()[1]]) + b"\xff"
    for cut in range(len(raw) + 1):
        responses, closed = served(split(raw, [cut]))
        assert ([r.status for r in responses], closed) == ([200, 401, 400], True), cut


@pytest.mark.parametrize("where", ["request line", "a header"])
def test_a_head_over_the_limit_gets_431_and_a_close(where: str) -> None:
    big = b"a" * 2 * MAX_HEAD_BYTES  # in 64 KB reads: over the limit before its end
    raw = (
        b"GET /auth?" + big + b" HTTP/1.1\r\n\r\n"
        if where == "request line"
        else b"GET /auth HTTP/1.1\r\nX-Big: " + big + b"\r\n\r\n"
    )
    pieces = [raw[i : i + 65536] for i in range(0, len(raw), 65536)]
    responses, closed = served(pieces)
    assert ([response.status for response in responses], closed) == ([431], True)


BEFORE_THE_HEAD = {
    "a check": b"GET /auth HTTP/1.1\r\nHost: x\r\n\r\n",
    "a check with a body": b"POST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n"
    b"\r\n\r\nbody",
    "a chunked check": b"POST /auth HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\n\r\n\r\n\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("before", BEFORE_THE_HEAD.values(), ids=BEFORE_THE_HEAD.keys())
@pytest.mark.parametrize("read", [64 * 1024, MAX_HEAD_BYTES])
def test_a_head_over_the_limit_that_begins_in_the_read_ending_a_request_gets_431(
    before: bytes, read: int
) -> None:
    """Every byte of the open head counts, the ones that came in the read that completed the
    request before it too (they were not counted: a 400 KiB head was answered)."""
    big = b"GET /auth HTTP/1.1\r\nX-Big: " + b"a" * (400 * 1024) + b"\r\n\r\n"
    raw = before + big
    responses, closed = served([raw[i : i + read] for i in range(0, len(raw), read)])
    assert ([response.status for response in responses], closed) == ([401, 431], True)


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_a_head_whose_end_is_split_between_reads_is_not_counted_with_the_next_request(
    cut: int,
) -> None:
    """The `\r\n\r\n` ending a head, split across two reads: the next head is counted alone."""
    first = b"GET /auth HTTP/1.1\r\nX-Pad: " + b"a" * (MAX_HEAD_BYTES - 100) + b"\r\n\r\n"
    second = b"GET /auth HTTP/1.1\r\nX-Pad: " + b"a" * (MAX_HEAD_BYTES - 100) + b"\r\n\r\n"
    responses, closed = served([first[:-cut], first[-cut:] + second])
    assert ([response.status for response in responses], closed) == ([401, 401], False)


def test_a_head_end_split_over_four_one_byte_reads_still_ends_its_piece() -> None:
    """The tail carried between reads is the last 3 bytes received, not of the last read: a
    head just within the limit, after a `\r\n\r\n` sent a byte at a time, is answered."""
    first = b"GET /auth HTTP/1.1\r\nHost: x"
    second = b"GET /auth HTTP/1.1\r\nX-Pad: "
    second += b"a" * (MAX_HEAD_BYTES - len(second) - 4) + b"\r\n\r\n"
    pieces = [first, b"\r", b"\n", b"\r", b"\n" + second]
    responses, closed = served(pieces)
    assert ([response.status for response in responses], closed) == ([401, 401], False)


def test_a_head_within_the_limit_behind_a_large_body_in_the_same_read_is_answered() -> None:
    """Exact, not an upper bound: the body before the head is not the head's."""
    body = b"b" * (200 * 1024)
    first = b"POST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    second = b"GET /auth HTTP/1.1\r\nX-Pad: " + b"a" * (200 * 1024) + b"\r\n\r\n"
    responses, closed = served([first, body + second])
    assert ([response.status for response in responses], closed) == ([401, 401], False)


def test_a_head_within_the_limit_is_answered_whatever_its_pieces() -> None:
    """The 60 KB token case, in 1 KB reads: the head's bytes are counted across reads."""
    raw = b"GET /auth HTTP/1.1\r\nApproov-Token: " + b"a" * 60_000 + b"\r\n\r\n"
    responses, closed = served([raw[i : i + 1024] for i in range(0, len(raw), 1024)])
    assert ([response.status for response in responses], closed) == ([401], False)


def test_a_head_that_never_completes_is_closed_after_the_head_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(authsvc.http.protocol, "HEAD_TIMEOUT_SECONDS", 0.05)

    async def run() -> tuple[bool, bool]:
        connection = Connection(dummy_app())
        await connection.send([b"GET /auth HTTP/1.1\r\nApproov-To"])
        before = connection.transport.closed
        await asyncio.sleep(0.2)
        return before, connection.transport.closed

    assert asyncio.run(run()) == (False, True)


def test_an_idle_connection_is_not_closed_by_the_head_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(authsvc.http.protocol, "HEAD_TIMEOUT_SECONDS", 0.05)

    async def run() -> bool:
        connection = Connection(dummy_app())
        await connection.send([requests_of([exchanges()[1]])])
        await asyncio.sleep(0.2)
        return connection.transport.closed

    assert asyncio.run(run()) is False


def test_the_answers_of_one_loop_turn_are_written_once_its_reads_are_all_answered() -> None:
    """Checks read from several connections in one turn: no answer wakes its client while the
    next connection's check is still being decided (authsvc.http.transport)."""

    async def run() -> tuple[list[bytes], list[int]]:
        connections = [Connection(dummy_app()) for _ in range(3)]
        for connection in connections:
            connection.protocol.data_received(requests_of([exchanges()[1]]))
        during = [connection.output for connection in connections]
        await asyncio.sleep(0)
        return during, [parse_responses(c.output)[0].status for c in connections]

    assert asyncio.run(run()) == ([b"", b"", b""], [401, 401, 401])


def keep_alive_for(connection: Connection, seconds: float) -> None:
    """uvicorn's keep-alive timeout, in a fraction of a second (its type says whole seconds)."""
    connection.protocol.timeout_keep_alive = seconds  # type: ignore[assignment]


def test_a_connection_idle_after_a_check_is_closed_after_the_keep_alive_timeout() -> None:
    async def run() -> tuple[bool, bool]:
        connection = Connection(dummy_app())
        keep_alive_for(connection, 0.1)
        await connection.send([requests_of([exchanges()[1]])])
        await asyncio.sleep(0.05)
        before = connection.transport.closed
        await asyncio.sleep(0.15)
        return before, connection.transport.closed

    assert asyncio.run(run()) == (False, True)


def test_a_connection_is_closed_only_after_the_keep_alive_timeout_since_its_last_check() -> None:
    """One timer per connection, pushed back lazily: when it fires after a later check, it
    waits out the rest of that check's timeout instead of closing."""

    async def run() -> list[bool]:
        connection = Connection(dummy_app())
        keep_alive_for(connection, 0.2)
        closed = []
        for _ in range(3):  # a check every 0.12 s: the timer fires between two of them
            await connection.send([requests_of([exchanges()[1]])])
            await asyncio.sleep(0.12)
            closed.append(connection.transport.closed)
        await asyncio.sleep(0.2)
        closed.append(connection.transport.closed)
        return closed

    assert asyncio.run(run()) == [False, False, False, True]


def test_a_request_in_progress_is_not_closed_by_the_keep_alive_timeout() -> None:
    async def run() -> bool:
        connection = Connection(dummy_app())
        keep_alive_for(connection, 0.1)
        await connection.send([requests_of([exchanges()[1]]), b"GET /auth HTTP/1.1\r\nHo"])
        await asyncio.sleep(0.25)
        return connection.transport.closed

    assert asyncio.run(run()) is False


@pytest.mark.parametrize(
    ("case", "head"),
    [
        ("Upgrade: websocket", b"GET /auth HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket"),
        ("CONNECT", b"CONNECT /auth HTTP/1.1\r\nHost: x"),
        (
            "Upgrade on an app route",
            b"GET /healthz HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c",
        ),
    ],
)
def test_a_request_pipelined_after_an_upgrade_is_never_left_hanging(case: str, head: bytes) -> None:
    """What follows an upgrade request is not HTTP: the upgrade request is answered and the
    connection closed, so the client knows the next request was not read."""
    responses, closed = served([head + b"\r\n\r\nGET /auth HTTP/1.1\r\n\r\n"])
    assert len(responses) == 1, case
    assert responses[0].headers.get(b"connection") == b"close"
    assert closed


@pytest.mark.parametrize(
    ("case", "request_line", "extra"),
    [
        ("HTTP/1.0", b"GET /auth HTTP/1.0", b""),
        ("HTTP/1.0 keep-alive", b"GET /auth HTTP/1.0", b"Connection: keep-alive\r\n"),
        ("Connection: close", b"GET /auth HTTP/1.1", b"Connection: close\r\n"),
        (
            "100-continue before a body",
            b"POST /auth HTTP/1.1",
            b"Expect: 100-continue\r\nContent-Length: 10\r\n",
        ),
    ],
)
def test_a_check_that_ends_its_connection_is_answered_with_connection_close(
    case: str, request_line: bytes, extra: bytes
) -> None:
    """Answered at once (a client expecting 100 Continue may never send its body, which would
    then be read as the next request), with `Connection: close`, then closed."""
    responses, closed = served([request_line + b"\r\n" + extra + b"\r\n"])
    assert [(r.status, r.headers.get(b"connection")) for r in responses] == [(401, b"close")]
    assert closed, case


def test_a_check_behind_an_app_request_waits_for_its_answer() -> None:
    """Pipelined behind /readyz (an ASGI task), a check is not answered first."""
    pool = exchanges()
    chosen = [pool[7], pool[0], pool[1]]
    responses, _ = served([requests_of(chosen)])
    assert answers(responses) == expected(chosen)


# --- trailer fields (RFC 9110 6.5): never the check's header fields -------------------------


def chunked_check(
    head: bytes, trailers: bytes, path: bytes = b"/auth", chunk: bytes = b""
) -> bytes:
    """A check with a chunked body: `chunk` (if any), then the last chunk and `trailers`."""
    body = (b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunk else b"") + b"0\r\n" + trailers + b"\r\n"
    start = b"POST %s HTTP/1.1\r\nHost: authsvc\r\nTransfer-Encoding: chunked\r\n" % path
    return start + head + b"\r\n" + body


@pytest.mark.parametrize(
    "before",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"],
    ids=["alone", "queued behind /healthz", "queued behind /metrics"],
)
def test_credentials_in_a_chunked_bodys_trailers_are_not_the_checks_headers(before: bytes) -> None:
    trailers = b"Approov-Token: %s\r\nAuthorization: Bearer abc\r\n" % bound_token().encode()
    responses, _ = served([before + chunked_check(b"", trailers)])
    last = responses[-1]
    assert (last.status, last.headers.get(b"x-approov-reason")) == (401, b"token_missing")


def test_a_signature_in_the_trailers_of_a_body_the_app_reads_is_not_the_checks_signature() -> None:
    """The ASGI app reads a signed route's forwarded body; a signature that arrives after it,
    as trailer fields, is not a header of the check."""
    message = signed_post(b'{"amount": 1}', token_value=ipk_token(pay=pay_for(b"Bearer abc")))
    signature = {b"signature", b"signature-input"}
    head = [(n, v) for n, v in message.header_pairs() if n not in signature | {b"content-length"}]
    trailers = [(n, v) for n, v in message.header_pairs() if n in signature]
    context = [
        (b"authorization", b"Bearer abc"),
        *((n, b"POST" if n == b"x-original-method" else v) for n, v in NGINX_CONTEXT),
    ]
    raw = chunked_check(
        fields(head + context), fields(trailers), b"/auth-signing-required", message.body or b""
    )
    responses, _ = served([raw])
    assert (responses[0].status, responses[0].headers[b"x-approov-reason"]) == (
        401,
        b"message_signature_missing",
    )


def fields(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(b"%s: %s\r\n" % pair for pair in pairs)


def test_a_single_use_check_is_answered_only_once_the_replay_store_said() -> None:
    """The fast path cannot wait for the store: it hands single-use routes to the app, or a
    replay would be allowed."""
    settings = Settings(secret=DUMMY_SECRET, binding_mode=BindingMode.OFF, replay_store="memory")
    app = create_app(Runtime.from_settings(settings), decision_log=DecisionLog(io.StringIO()))
    message = sign(request())
    head = b"GET /auth-signing-single-use HTTP/1.1\r\nHost: authsvc\r\n"
    raw = head + fields([*message.header_pairs(), *NGINX_CONTEXT]) + b"\r\n"

    async def run() -> list[Response]:
        connection = Connection(app)
        await connection.send([raw, raw])
        return parse_responses(connection.output)

    first, replay = asyncio.run(run())
    assert (first.headers[b"x-approov-reason"], replay.headers[b"x-approov-reason"]) == (
        b"ok",
        b"message_replayed",
    )
