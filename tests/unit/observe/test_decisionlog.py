"""The decision line: one JSON object, never longer than PIPE_BUF, never the token."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from authsvc.check.verify import Verdict
from authsvc.observe.decisionlog import MAX_LINE_BYTES, DecisionLog, bounded_line, header_text
from authsvc.policy import Decision, Reason

HOSTILE = [
    "\x01" * 4000,  # 6 bytes a character once escaped
    "\u00ff" * 4000,
    '"\\' * 3000,
    "x" * 20_000,
    "\ud800" * 3000,  # lone surrogates, from a token's JSON
]


def record(**overrides: Any) -> str:
    stream = io.StringIO()
    claims = {"exp": 2_000_000_000, "did": overrides.pop("did", "device")}
    fields: dict[str, Any] = {
        "policy": "required",
        "signing": "off",
        "method": "GET",
        "uri": "/api/x",
        "request_id": "r-1",
        "latency_ms": 0.5,
        **overrides,
    }
    DecisionLog(stream).record(Verdict(Reason.OK, Decision.ALLOW, claims, "secret"), **fields)
    return stream.getvalue()


@pytest.mark.parametrize(
    "hostile", HOSTILE, ids=["control", "latin-1", "quotes", "long", "surrogates"]
)
@pytest.mark.parametrize("field", ["uri", "method", "request_id", "did"])
def test_a_line_built_from_hostile_values_fits_pipe_buf_and_stays_json(
    field: str, hostile: str
) -> None:
    """Lines up to PIPE_BUF (4096 bytes) are written whole: the workers' lines never interleave."""
    line = record(**{field: hostile[:20_000] if field != "did" else hostile})
    assert len(line.encode()) <= MAX_LINE_BYTES
    assert line.count("\n") == 1
    assert line.endswith("\n")
    parsed = json.loads(line)
    assert parsed["reason"] == "ok"


def test_every_field_hostile_at_once_still_fits() -> None:
    line = record(
        uri=header_text(b"\x01" * 600),
        method=header_text(b"\xff" * 600),
        request_id=header_text(b'"' * 600),
        did="\x02" * 512,
        error="E" * 600,
    )
    assert len(line.encode()) <= MAX_LINE_BYTES
    assert json.loads(line)["truncated"] is True


def test_a_short_line_is_left_whole() -> None:
    fields = {"uri": "/api/x", "method": "GET"}
    assert json.loads(bounded_line(dict(fields))) == fields


def test_the_longest_field_is_cut_to_what_fits_and_no_more() -> None:
    line = bounded_line({"uri": "u" * 5000, "method": "GET"})
    parsed = json.loads(line)
    assert len(line) + 1 == MAX_LINE_BYTES
    assert (parsed["method"], parsed["truncated"]) == ("GET", True)
    assert set(parsed["uri"]) == {"u"}


@pytest.mark.parametrize(
    "now",
    [0.0, 1795763366.152, 1795763366.9999, 1795763366.9999996, 1795763367.0005, 253402300799.5],
)
def test_time_is_iso_8601_utc_to_the_millisecond_as_isoformat_has_it(now: float) -> None:
    stream = io.StringIO()
    DecisionLog(stream, clock=lambda: now).record(
        Verdict(Reason.OK, Decision.ALLOW),
        policy="off",
        signing="off",
        method=None,
        uri=None,
        request_id=None,
        latency_ms=0,
    )
    expected = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
    assert json.loads(stream.getvalue())["time"] == expected
