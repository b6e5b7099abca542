"""One JSON line per decision, on stdout. Never the token, the secret or the binding value."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from authsvc.verify import Verdict

# Keeps a line well under PIPE_BUF (4096), so lines from several workers never interleave.
MAX_FIELD_CHARS = 512


def header_text(value: bytes | None) -> str | None:
    """A header value as log text: latin-1 keeps every byte visible, JSON escapes the rest."""
    if value is None:
        return None
    return value[:MAX_FIELD_CHARS].decode("latin-1")


class DecisionLog:
    __slots__ = ("_now", "_stream")

    def __init__(
        self,
        stream: TextIO | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._now = now

    def record(
        self,
        verdict: Verdict,
        *,
        policy: str,
        method: str | None,
        uri: str | None,
        request_id: str | None,
        latency_ms: float,
        error: str | None = None,
    ) -> None:
        claims = verdict.claims or {}
        did = claims.get("did")
        exp = claims.get("exp")
        fields: dict[str, Any] = {
            "time": self._now().isoformat(timespec="milliseconds"),
            "decision": verdict.decision.value,
            "reason": verdict.reason.value,
            "policy": policy,
            "method": method,
            "uri": uri,
            "request_id": request_id,
            "latency_ms": round(latency_ms, 3),
            "did": did[:MAX_FIELD_CHARS] if isinstance(did, str) else None,
            "key": verdict.key,
            "cached": True if verdict.cached else None,
            "exp": exp if isinstance(exp, int | float) and math.isfinite(exp) else None,
            "error": error,
        }
        line = json.dumps({k: v for k, v in fields.items() if v is not None})
        self._stream.write(line + "\n")
        self._stream.flush()
