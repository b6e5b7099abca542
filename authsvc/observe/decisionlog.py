"""One JSON line per decision, on stdout. Never the token, the secret or the binding value."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from authsvc.check.verify import Verdict, is_timestamp

# A first, cheap bound on each text taken from a request or a token.
MAX_FIELD_CHARS = 512
# PIPE_BUF: a write of at most this many bytes to a pipe is never interleaved with another
# process's, so the workers' lines on one stdout stay whole. Counted with the newline.
MAX_LINE_BYTES = 4096
# What may be shortened to fit, longest first; the rest is short by construction.
_CUTTABLE = ("uri", "method", "request_id", "did", "key", "error")


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
        fields["truncated"] = True
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
    __slots__ = ("_clock", "_timestamps", "_write")

    def __init__(
        self, stream: TextIO | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._write = _line_writer(stream if stream is not None else sys.stdout)
        self._clock = clock
        self._timestamps = _Timestamps()

    def record(
        self,
        verdict: Verdict,
        *,
        policy: str,
        signing: str,
        method: str | None,
        monitored: bool = False,
        uri: str | None,
        request_id: str | None,
        latency_ms: float,
        error: str | None = None,
    ) -> None:
        claims = verdict.claims or {}
        did = claims.get("did")
        exp = claims.get("exp")
        fields: dict[str, Any] = {
            "time": self._timestamps.format(self._clock()),
            "decision": verdict.decision.value,
            "reason": verdict.reason.value,
            "policy": policy,
            "signing": signing,
            "monitor": True if monitored else None,
            "method": method,
            "uri": uri,
            "request_id": request_id,
            "latency_ms": round(latency_ms, 3),
            "did": did[:MAX_FIELD_CHARS] if isinstance(did, str) else None,
            "key": verdict.key,
            "cached": True if verdict.cached else None,
            # Any JSON number can reach here (the claims of a token denied as claims_invalid).
            "exp": exp if is_timestamp(exp) else None,
            "error": error,
        }
        self._write(bounded_line({k: v for k, v in fields.items() if v is not None}) + "\n")


def _line_writer(stream: TextIO) -> Callable[[str], None]:
    """One write per line: to the stream's file descriptor when it has one (stdout in
    production: no text layer, nothing buffered to lose), else through the stream."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # io.StringIO, a captured stdout
        fd = None
    if fd is None:

        def write_text(line: str) -> None:
            stream.write(line)
            stream.flush()

        return write_text
    stream.flush()  # whatever was buffered goes before the first line

    def write_fd(line: str) -> None:
        data = memoryview(line.encode("ascii"))  # ASCII: JSON escapes the rest
        while data:  # a write of at most PIPE_BUF bytes is whole; a signal may still cut one
            data = data[os.write(fd, data) :]

    return write_fd
