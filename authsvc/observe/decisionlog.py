"""One JSON line per decision, on stdout. Never the token, the secret or the binding value.

Its fields are named once, in `Field`: `authsvc report` reads them back by these names.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from json.encoder import encode_basestring_ascii
from typing import Any, TextIO

from authsvc.check.cache import VerdictMemo
from authsvc.check.verify import Verdict, is_timestamp
from authsvc.policy import Decision, Reason

# A first, cheap bound on each text taken from a request or a token.
MAX_FIELD_CHARS = 512
# PIPE_BUF: a write of at most this many bytes to a pipe is never interleaved with another
# process's, so the workers' lines on one stdout stay whole. Counted with the newline.
MAX_LINE_BYTES = 4096


class Field(StrEnum):
    """The names of a decision line's fields."""

    TIME = "time"
    DECISION = "decision"
    REASON = "reason"
    BINDING = "binding"
    """The route's binding policy (BindingMode)."""
    SIGNING = "signing"
    """The route's message signing policy (SigningMode)."""
    MONITOR = "monitor"
    """Present (true) on a monitored route."""
    METHOD = "method"
    URI = "uri"
    REQUEST_ID = "request_id"
    APPROOV_STATUS = "approov_status"
    APPROOV_TRACE_ID = "approov_trace_id"
    TRACE_ID = "trace_id"
    LATENCY_MS = "latency_ms"
    DID = "did"
    KEY = "key"
    SIGNED_BY = "signed_by"
    CACHED = "cached"
    EXP = "exp"
    ERROR = "error"
    TRUNCATED = "truncated"


LEGACY_BINDING_FIELD = "policy"
"""What authsvc 0.1.0 named the binding field, for `authsvc report` on older logs."""


def _key(field: Field) -> str:
    """`"name": `, written once: formatting an enum member costs 0.3 µs each time."""
    return f'"{field.value}": '


_TIME, _METHOD, _URI, _REQUEST_ID = map(
    _key, (Field.TIME, Field.METHOD, Field.URI, Field.REQUEST_ID)
)
_APPROOV_STATUS, _APPROOV_TRACE_ID, _TRACE_ID, _LATENCY_MS = map(
    _key, (Field.APPROOV_STATUS, Field.APPROOV_TRACE_ID, Field.TRACE_ID, Field.LATENCY_MS)
)
_ERROR = ", " + _key(Field.ERROR)
_DID, _KEY, _SIGNED_BY, _CACHED, _EXP = (
    ", " + _key(field) for field in (Field.DID, Field.KEY, Field.SIGNED_BY, Field.CACHED, Field.EXP)
)
# What may be shortened to fit, longest first; the rest is short by construction.
_CUTTABLE = (Field.URI, Field.METHOD, Field.REQUEST_ID, Field.DID, Field.KEY, Field.ERROR)


def header_text(value: bytes | None) -> str | None:
    """A header value as log text: latin-1 keeps every byte visible, JSON escapes the rest."""
    if value is None:
        return None
    return value[:MAX_FIELD_CHARS].decode("latin-1")


def bounded_line(fields: dict[str, Any]) -> str:
    """`fields` as one JSON line of at most MAX_LINE_BYTES bytes with its newline.

    JSON is written ASCII-only, so characters are bytes. When the line is too long, the longest
    text field is cut (by what it costs encoded, escapes included) and `"truncated": true` added.
    """
    line = json.dumps(fields)
    while len(line) >= MAX_LINE_BYTES:
        fields[Field.TRUNCATED] = True
        encoded = {n: len(json.dumps(fields[n])) for n in _CUTTABLE if fields.get(n)}
        longest = max(encoded, key=encoded.__getitem__)
        excess = len(json.dumps(fields)) + 1 - MAX_LINE_BYTES
        fields[longest] = _cut(fields[longest], encoded[longest] - excess)
        line = json.dumps(fields)
    return line


def _cut(text: str, budget: int) -> str:
    """The longest prefix of `text` whose JSON encoding takes at most `budget` characters."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if len(json.dumps(text[:middle])) <= budget:
            low = middle
        else:
            high = middle - 1
    return text[:low]


class _Timestamps:
    """ISO 8601 in UTC to the millisecond, as datetime.isoformat(timespec="milliseconds") has
    it; the part down to the second is formatted once a second, not once a line."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, now: float) -> str:
        # As datetime does: round to the microsecond (carrying into the second), then cut.
        second = math.floor(now)
        micro = round((now - second) * 1e6)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{micro // 1000:03d}+00:00"


class DecisionLog:
    """Writes one line per decision. On a file descriptor (stdout in production) the lines of
    one event-loop turn are written together once the turn ends, in writes of at most
    MAX_LINE_BYTES of whole lines; `flush` writes what is pending (the worker calls it when it
    stops). A SIGKILL loses at most the lines of the turn it lands in."""

    __slots__ = ("_clock", "_heads", "_pending", "_stream", "_tails", "_timestamps", "_write")

    def __init__(
        self, stream: TextIO | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout  # its descriptor stays open
        self._write, buffered = _line_writer(self._stream)
        self._clock = clock
        self._timestamps = _Timestamps()
        self._pending: list[str] | None = [] if buffered else None
        # Fragments decided once: per decision, reason and route policy; per cached verdict.
        self._heads: dict[tuple[Decision, Reason, str, str, bool], str] = {}
        self._tails = VerdictMemo(_verdict_tail)

    def record(
        self,
        verdict: Verdict,
        *,
        binding: str,
        signing: str,
        method: str | None,
        monitored: bool = False,
        uri: str | None,
        request_id: str | None,
        latency_ms: float,
        error: str | None = None,
        approov_status: str | None = None,
        approov_trace_id: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        """`approov_status`: what the app reported of its token fetch (a bounded vocabulary);
        the trace ids: Approov's fetch (Approov-TraceID) and the W3C trace (traceparent)."""
        key = (verdict.decision, verdict.reason, binding, signing, monitored)
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = _head(*key)
        line = (
            f'{{{_TIME}"{self._timestamps.format(self._clock())}", {head}'
            f"{_text(_METHOD, method)}{_text(_URI, uri)}"
            f"{_text(_REQUEST_ID, request_id)}{_text(_APPROOV_STATUS, approov_status)}"
            f"{_text(_APPROOV_TRACE_ID, approov_trace_id)}{_text(_TRACE_ID, trace_id)}"
            f"{_LATENCY_MS}{round(latency_ms, 3)!r}{self._tails(verdict)}"
            f"{'' if error is None else _ERROR + encode_basestring_ascii(error)}}}\n"
        )
        if len(line) >= MAX_LINE_BYTES:  # rare: long request values, cut by the general path
            fields = json.loads(line)
            line = bounded_line(fields) + "\n"
        self._emit(line)

    def _emit(self, line: str) -> None:
        pending = self._pending
        if pending is None:
            self._write(line)
            return
        if not pending:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no event loop: nothing would flush it later
                self._write(line)
                return
        pending.append(line)

    def flush(self) -> None:
        """Write the pending lines: whole lines, at most MAX_LINE_BYTES a write."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        chunk: list[str] = []
        size = 0
        for line in pending:
            if size + len(line) > MAX_LINE_BYTES:
                self._write("".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        self._write("".join(chunk))


def _text(key: str, value: str | None) -> str:
    return "" if value is None else f"{key}{encode_basestring_ascii(value)}, "


def _head(decision: Decision, reason: Reason, binding: str, signing: str, monitored: bool) -> str:
    fields: dict[str, Any] = {
        Field.DECISION: decision.value,
        Field.REASON: reason.value,
        Field.BINDING: binding,
        Field.SIGNING: signing,
    }
    if monitored:
        fields[Field.MONITOR] = True
    return json.dumps(fields)[1:-1] + ", "


def _verdict_tail(verdict: Verdict) -> str:
    """The fields that depend on the verdict alone, each with its leading comma: as json.dumps
    writes them, built directly (a miss's new verdict derives it on every check)."""
    claims = verdict.claims or {}
    did = claims.get("did")
    exp = claims.get("exp")
    tail = ""
    if isinstance(did, str):
        tail += f"{_DID}{encode_basestring_ascii(did[:MAX_FIELD_CHARS])}"
    if verdict.key is not None:
        tail += f"{_KEY}{encode_basestring_ascii(verdict.key)}"
    if verdict.signed_by is not None:
        tail += f"{_SIGNED_BY}{encode_basestring_ascii(verdict.signed_by)}"
    if verdict.cached:
        tail += f"{_CACHED}true"
    # Any JSON number can reach here (the claims of a token denied as claims_invalid); a
    # timestamp is an int or a finite float, whose repr is its JSON.
    if is_timestamp(exp):
        tail += f"{_EXP}{exp!r}"
    return tail


def _line_writer(stream: TextIO) -> tuple[Callable[[str], None], bool]:
    """A write of whole lines, and whether it goes straight to a file descriptor: stdout in
    production (no text layer, nothing buffered but what DecisionLog holds for one loop turn);
    a stream without one (io.StringIO, a captured stdout) is written through and flushed."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        fd = None
    if fd is None:

        def write_text(lines: str) -> None:
            stream.write(lines)
            stream.flush()

        return write_text, False
    stream.flush()  # whatever was buffered goes before the first line

    def write_fd(lines: str) -> None:
        data = memoryview(lines.encode("ascii"))  # ASCII: JSON escapes the rest
        while data:  # a write of at most PIPE_BUF bytes is whole; a signal may still cut one
            data = data[os.write(fd, data) :]

    return write_fd, True
