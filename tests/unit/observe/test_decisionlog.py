"""The decision line: one JSON object, never longer than PIPE_BUF, never the token."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authsvc.check.verify import Verdict, is_timestamp
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
        "binding": "required",
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
        binding="off",
        signing="off",
        method=None,
        uri=None,
        request_id=None,
        latency_ms=0,
    )
    expected = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
    assert json.loads(stream.getvalue())["time"] == expected


TEXTS = st.one_of(
    st.none(), st.text(max_size=80), st.text(alphabet='\x00\x1f"\\\u00ff\ud800', max_size=8)
)


@settings(max_examples=300, deadline=None)
@given(
    text=st.fixed_dictionaries(
        dict.fromkeys(
            (
                "method",
                "uri",
                "request_id",
                "error",
                "approov_status",
                "approov_trace_id",
                "trace_id",
            ),
            TEXTS,
        )
    ),
    signed_by=st.sampled_from([None, "install", "account"]),
    key=st.one_of(st.none(), st.just("secret"), TEXTS),
    did=st.one_of(st.none(), st.text(max_size=40), st.integers()),
    exp=st.one_of(st.none(), st.integers(-(10**20), 10**20), st.floats(allow_nan=True)),
    flags=st.tuples(st.booleans(), st.booleans()),
    latency_ms=st.floats(0, 10_000),
)
def test_the_line_is_exactly_json_dumps_of_its_fields(  # noqa: PLR0917 - hypothesis's arguments
    text: dict[str, str | None],
    did: object,
    exp: object,
    flags: tuple[bool, bool],
    latency_ms: float,
    signed_by: str | None,
    key: str | None,
) -> None:
    """The line is assembled from fragments decided once (per reason and policy, per cached
    verdict), not by encoding a dict per check: it must still be the dict's json.dumps."""
    method, uri, request_id, error = (text[n] for n in ("method", "uri", "request_id", "error"))
    status, approov_trace_id, trace_id = (
        text[n] for n in ("approov_status", "approov_trace_id", "trace_id")
    )
    monitored, cached = flags
    claims = {"exp": exp, "did": did}
    verdict = Verdict(Reason.OK, Decision.ALLOW, claims, key, cached=cached, signed_by=signed_by)
    stream = io.StringIO()
    now = 1_795_763_366.25
    DecisionLog(stream, clock=lambda: now).record(
        verdict,
        binding="required",
        signing="off",
        monitored=monitored,
        method=method,
        uri=uri,
        request_id=request_id,
        latency_ms=latency_ms,
        error=error,
        approov_status=status,
        approov_trace_id=approov_trace_id,
        trace_id=trace_id,
    )
    fields = {
        "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
        "decision": "allow",
        "reason": "ok",
        "binding": "required",
        "signing": "off",
        "monitor": True if monitored else None,
        "method": method,
        "uri": uri,
        "request_id": request_id,
        "approov_status": status,
        "approov_trace_id": approov_trace_id,
        "trace_id": trace_id,
        "latency_ms": round(latency_ms, 3),
        "did": did if isinstance(did, str) else None,
        "key": key,
        "signed_by": signed_by,
        "cached": True if cached else None,
        "exp": exp if is_timestamp(exp) else None,
        "error": error,
    }
    expected = bounded_line({k: v for k, v in fields.items() if v is not None}) + "\n"
    assert stream.getvalue() == expected


PipeLog = tuple[DecisionLog, list[bytes], int]


@pytest.fixture
def pipe_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[PipeLog]:
    """A DecisionLog on a pipe, the data of each write(2) it makes, and the pipe's read end."""
    read_end, write_end = os.pipe()
    writes: list[bytes] = []
    real_write = os.write

    def recording_write(fd: int, data: Any) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", recording_write)
    with os.fdopen(write_end, "w") as stream, os.fdopen(read_end, "rb", buffering=0):
        yield DecisionLog(stream), writes, read_end


def line_for(log: DecisionLog, number: int) -> None:
    log.record(
        Verdict(Reason.TOKEN_MISSING, Decision.DENY),
        binding="required",
        signing="off",
        method="GET",
        uri="/api/" + "x" * 300,
        request_id=str(number),
        latency_ms=0.1,
    )


def test_lines_of_one_loop_turn_are_written_together_in_whole_lines_of_at_most_pipe_buf(
    pipe_log: PipeLog,
) -> None:
    log, writes, read_end = pipe_log

    async def turn() -> int:
        for number in range(40):
            line_for(log, number)
        written_in_the_turn = len(writes)
        await asyncio.sleep(0)
        return written_in_the_turn

    assert asyncio.run(turn()) == 0
    assert 1 < len(writes) < 40
    assert all(len(data) <= MAX_LINE_BYTES and data.endswith(b"\n") for data in writes)
    received = os.read(read_end, 1 << 20).decode().splitlines()
    assert [json.loads(line)["request_id"] for line in received] == [str(n) for n in range(40)]


def test_flush_writes_what_a_stopping_worker_still_holds(pipe_log: PipeLog) -> None:
    """The worker calls flush once its connections are done (SIGTERM, SIGQUIT, SIGHUP)."""
    log, writes, read_end = pipe_log

    async def stop_mid_turn() -> None:
        line_for(log, 1)
        line_for(log, 2)
        log.flush()  # as the worker does before the loop turns again

    asyncio.run(stop_mid_turn())
    assert len(writes) == 1
    assert len(os.read(read_end, 1 << 20).decode().splitlines()) == 2


def test_outside_an_event_loop_each_line_is_written_at_once(pipe_log: PipeLog) -> None:
    log, writes, _ = pipe_log
    line_for(log, 1)
    assert len(writes) == 1
