"""The HTTP/1.1 connection: uvicorn's httptools protocol (llhttp parses every byte), with the
check routes answered from the parser's callbacks and the request head bounded.

A check needs its headers, its path and its method, and answers with a status and a few
headers: it is decided and written inside `on_headers_complete`, with no ASGI task and no
awaits (measured in bench/README.md: the task and two `send` awaits cost more than the check).
It builds on uvicorn's protocol internals (`pipeline`, `cycle`, `flow`, `server_state`, the
parser callbacks): pyproject.toml bounds uvicorn to the versions tested, and
tests/unit/http/test_uvicorn_contract.py names any of them an upgrade moves.
Everything else goes to the ASGI app as uvicorn runs it: `/healthz`, `/readyz`, `/metrics`, a
check whose signature covers a body the proxy forwards (Envoy `with_request_body`), and a check
pipelined behind a request the app is still answering (answers leave in request order).
"""

from __future__ import annotations

import asyncio
import http
import time
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from authsvc.http.endpoint import CheckEndpoint, CheckRequest
from authsvc.http.transport import Turn, TurnTransport

# How long a stopping worker keeps an idle kept-alive connection open for one last request.
DRAIN_SECONDS = 1.0
# The most a request head (request line and headers) may take: 4x the 60 KB token case, and
# Envoy's default limit (60 KiB) with room to spare. A larger one is answered 431 and closed.
MAX_HEAD_BYTES = 256 * 1024
# How long a begun request head may take to arrive whole; a proxy sends it at once.
HEAD_TIMEOUT_SECONDS = 5.0

_STATUS_LINES = {
    status: b"HTTP/1.1 %d %s\r\n" % (status, http.HTTPStatus(status).phrase.encode())
    for status in (200, 204, 401)
}
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)


def serving(checks: CheckEndpoint) -> type[CheckProtocol]:
    """The protocol class uvicorn builds each connection with (its `http` setting): the check
    endpoint is given to it, not looked up on the app, so a middleware around the app cannot
    turn the fast path off unseen."""

    class ServingChecks(CheckProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, checks=checks, **kwargs)

    return ServingChecks


class CheckProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with checks answered at once, a bounded request head, and a
    graceful stop that never resets a proxy's check.

    On a stop, uvicorn closes an idle kept-alive connection at once. A proxy may be sending a
    check on it at that instant (or the worker accepted it and has not read its request yet):
    the close then resets that check, and nginx, which retries once, answers 503 when the retry
    meets a second such connection (measured under load through a SIGHUP reload). Here an idle
    connection stays open: its next request is answered with `Connection: close`, and one that
    stays idle is closed after DRAIN_SECONDS.
    """

    def __init__(self, *args: Any, checks: CheckEndpoint, **kwargs: Any) -> None:
        """`checks`: what the check routes are answered with, handed over by the worker (see
        `serving`); the rest is uvicorn's."""
        super().__init__(*args, **kwargs)
        self._checks = checks
        self._draining = False
        self._answered = False  # the request being parsed was answered from the callbacks
        self._app_reads_body = False  # the app was handed the request whose body is arriving
        self._refused = False  # bytes llhttp refused came while answers were owed: 400 after them
        self._in_head = False  # a request head has begun and is not complete
        self._head_bytes = 0  # the open head's bytes before the piece being parsed
        self._head_start = 0  # where in that piece the open head began
        self._piece_bytes = 0  # that piece's length: a head ends where a piece ends
        self._piece_body_bytes = 0  # body bytes in that piece so far
        self._tail = b""  # the last 3 bytes received, for a head end split between reads
        self._head_timer: asyncio.TimerHandle | None = None
        self._paused_for_writes = False
        # Keep-alive after answers from the callbacks: one timer per connection, pushed back
        # lazily, where uvicorn arms and cancels a timer for every request (~3 µs a check).
        self._idle_since: float | None = None  # when the last check was answered, if idle since
        self._idle_timer: asyncio.TimerHandle | None = None
        # uvicorn's headers for every answer (`date`), renewed each second, as bytes.
        self._default_headers: list[tuple[bytes, bytes]] | None = None
        self._default_head = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(TurnTransport(transport, Turn.current()))

    # The request head: bounded in size and in time.

    def data_received(self, data: bytes) -> None:
        if self._refused:  # nothing after bytes llhttp refused is read
            return
        self._unset_keepalive_if_required()
        self._idle_since = None
        start = 0
        for end in self._piece_ends(data):
            piece = data if end - start == len(data) else memoryview(data)[start:end]
            if not self._parse(piece):
                return
            start = end
        self._tail = (self._tail + data)[-3:]
        if not self._in_head:
            return
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse_head()
        elif self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_timed_out)

    def _piece_ends(self, data: bytes) -> list[int]:
        """`data` cut after every `\r\n\r\n`, so that the open head's bytes are counted
        exactly. llhttp takes no other line end (it refuses a bare LF), so a request head ends
        at its first `\r\n\r\n`, a chunked body at one too (the byte before it is never a
        LF): a head then begins at the start of a piece, or after a Content-Length body's last
        bytes, which on_body counts."""
        ends = []
        split = (self._tail + data[:3]).find(b"\r\n\r\n")  # its end in this read
        end = split + 4 - len(self._tail) if split >= 0 else 0
        if end > 0:
            ends.append(end)
        while (found := data.find(b"\r\n\r\n", end)) >= 0:
            end = found + 4
            ends.append(end)
        if end < len(data):
            ends.append(len(data))
        return ends

    def _parse(self, piece: bytes | memoryview) -> bool:
        """Feed one piece to llhttp and count the open head's bytes in it; False once the
        connection is answered for good (an error, an upgrade)."""
        self._head_start = 0  # unless a head begins in it (on_message_begin)
        self._piece_bytes = len(piece)
        self._piece_body_bytes = 0
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserError:
            if self._answered:  # its head was fine, its body is not: no second answer
                self.transport.close()
            elif self._answers_owed() and not self._app_reads_body:
                # uvicorn would write the 400 ahead of the answers still owed, which a client
                # then reads as theirs: it follows them (on_response_complete).
                self._refused = True
            else:
                self.send_400_response("Invalid HTTP request received.")
            return False
        except httptools.HttpParserUpgrade:
            # The upgrade (or CONNECT) request was answered with `Connection: close`; what
            # follows it on the connection is not HTTP and is not read.
            return False
        if self._in_head:
            self._head_bytes += self._piece_bytes - self._head_start
        return True

    def _refuse_head(self) -> None:
        self._answered = True  # what follows it is read and dropped
        self.transport.write(_HEAD_TOO_LARGE)
        self.transport.close()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        # uvicorn builds the app's scope here; a check needs none (see _to_app).
        self.url = b""
        self.headers = []
        self._answered = False
        self._app_reads_body = False
        self._in_head = True
        self._head_bytes = 0
        self._head_start = self._piece_body_bytes

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp hands a chunked body's trailer fields to this callback too, after the head:
        # they are never header fields (RFC 9110 6.5), and the app may not have read the list
        # yet. uvicorn's also looks for `Expect: 100-continue` on every header: see _to_app.
        if self._in_head:
            self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self.transport.is_closing():  # a request pipelined after one that closes
            self._answered = True
            return
        if self._head_bytes + self._piece_bytes - self._head_start > MAX_HEAD_BYTES:
            self._refuse_head()
            return
        if not self._answer_check():
            self._to_app()

    def _to_app(self) -> None:
        parsed = self.url, self.headers
        super().on_message_begin()  # the scope, with what was parsed kept
        self.url, self.headers = parsed
        self.scope["headers"] = self.headers
        self.expect_100_continue = any(
            name == b"expect" and value.lower() == b"100-continue" for name, value in self.headers
        )
        super().on_headers_complete()
        self._app_reads_body = True
        if self._draining or self.parser.should_upgrade():
            self.cycle.keep_alive = False

    def _answers_owed(self) -> bool:
        """The app is still answering a request, or has requests queued behind it."""
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _answer_check(self) -> bool:
        """Answer the request here if it is a check that needs nothing the app alone has."""
        checks = self._checks
        if self._answers_owed():
            return False
        started = time.perf_counter()
        url = httptools.parse_url(self.url)
        raw_path: bytes = url.path
        path = raw_path.decode("ascii")
        route = checks.route(path if "%" not in path else unquote(path))  # as uvicorn does
        if route is None or route.single_use:  # the app awaits the replay store
            return False
        method = self.parser.get_method().decode("ascii")
        request = checks.request(method, raw_path, url.query or b"", self.headers)
        if not request.framing_known:  # RFC 9112 6.3: 400, then close
            self.send_400_response("Invalid HTTP request received.")
            self._answered = True
            return True
        decided = checks.decide(route, request)
        if decided is None:  # a signature covers the body: the app reads it
            return False
        verdict, error = decided
        answer = checks.answer(verdict, route, request)
        keep_alive = (
            self.parser.should_keep_alive()
            and self.parser.get_http_version() == "1.1"
            and not self._draining
            and not self.parser.should_upgrade()
            # Answered before its body: a client waiting for 100 Continue may never send it.
            and not (request.expects_continue and request.announces_body)
        )
        end = b"\r\n" if keep_alive else b"connection: close\r\n\r\n"
        default_headers = self.server_state.default_headers
        if default_headers is not self._default_headers:
            self._default_headers = default_headers
            self._default_head = b"".join(b"%s: %s\r\n" % pair for pair in default_headers)
        self.transport.write(_STATUS_LINES[answer.status] + self._default_head + answer.head + end)
        self._answered = True  # its body, if any, is read and dropped
        if not keep_alive:
            self.transport.close()
        elif self.flow.write_paused and not self._paused_for_writes:
            self._paused_for_writes = True  # a client that does not read gets no more answers
            self.flow.pause_reading()
        if self.access_log:
            self._log_access(request, answer.status)
        checks.record(verdict, route, request, started, error)
        self._check_answered()
        return True

    def _check_answered(self) -> None:
        """uvicorn's on_response_complete for an answer from the callbacks, which leaves no
        answer owed (no pipeline to start): its keep-alive timer armed only if none is."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        self._idle_since = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self.timeout_keep_alive, self._idle_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        super().connection_lost(exc)

    def _idle_expired(self) -> None:
        """Close the connection once idle for uvicorn's keep-alive timeout since its last
        answered check; a request since then stops the watch (its answer starts it again)."""
        self._idle_timer = None
        if self._idle_since is None or self.transport.is_closing():
            return
        remaining = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if remaining > 0:
            self._idle_timer = self.loop.call_later(remaining, self._idle_expired)
        else:
            self.transport.close()

    def _log_access(self, request: CheckRequest, status: int) -> None:
        target = request.raw_path + (b"?" + request.query if request.query else b"")
        self.access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            f"{self.client[0]}:{self.client[1]}" if self.client else "",
            request.method,
            target.decode("latin-1"),
            self.parser.get_http_version(),
            status,
        )

    def on_body(self, body: bytes) -> None:
        self._piece_body_bytes += len(body)
        if not self._answered:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._app_reads_body = False
        if not self._answered:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._refused and not self._answers_owed() and not self.transport.is_closing():
            self.server_state.total_requests += 1
            self.send_400_response("Invalid HTTP request received.")
            return
        super().on_response_complete()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._paused_for_writes:
            self._paused_for_writes = False
            self.flow.resume_reading()

    # A graceful stop.

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._draining = True
            self.loop.call_later(DRAIN_SECONDS, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing():
            self.transport.close()
