"""TurnTransport: the answers of one event-loop turn leave together, in order, and none is lost
to a close."""

from __future__ import annotations

import asyncio

import pytest

from authsvc.http.transport import Turn, TurnTransport
from tests.support.protocol_harness import MemoryTransport


class CountingTransport(MemoryTransport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))  # every attempt, even one after the close
        super().write(data)


def wrapped() -> tuple[TurnTransport, CountingTransport]:
    inner = CountingTransport()
    return TurnTransport(inner, Turn.current()), inner  # type: ignore[arg-type]


def test_the_writes_of_one_turn_leave_in_one_write_in_order_once_the_turn_is_done() -> None:
    async def run() -> tuple[list[bytes], list[bytes]]:
        transport, inner = wrapped()
        transport.write(b"first ")
        transport.write(memoryview(b"second"))
        during = list(inner.writes)
        await asyncio.sleep(0)
        return during, inner.writes

    assert asyncio.run(run()) == ([], [b"first second"])


def test_each_turn_sends_its_own_writes() -> None:
    async def run() -> list[bytes]:
        transport, inner = wrapped()
        for answer in (b"a", b"b"):
            transport.write(answer)
            await asyncio.sleep(0)
        return inner.writes

    assert asyncio.run(run()) == [b"a", b"b"]


def test_a_close_sends_what_is_held_before_closing() -> None:
    async def run() -> tuple[bytes, bool]:
        transport, inner = wrapped()
        transport.write(b"the last answer")
        transport.close()
        await asyncio.sleep(0)
        return bytes(inner.written), inner.closed

    assert asyncio.run(run()) == (b"the last answer", True)


def test_what_a_connection_closed_by_its_client_still_holds_is_dropped_quietly() -> None:
    async def run() -> list[bytes]:
        transport, inner = wrapped()
        transport.write(b"an answer nobody reads")
        inner.close()
        await asyncio.sleep(0)
        return inner.writes

    assert asyncio.run(run()) == []


def test_outside_an_event_loop_a_write_goes_out_at_once() -> None:
    transport, inner = wrapped()
    transport.write(b"now")
    assert inner.writes == [b"now"]


class BrokenTransport(CountingTransport):
    def write(self, data: bytes) -> None:
        raise OSError("the socket is gone")

    def abort(self) -> None:
        self.closed = True


@pytest.mark.internal_error  # the failed write is logged as an error, as it should be
def test_a_connection_whose_write_fails_holds_back_no_other_answer() -> None:
    async def run() -> tuple[list[bytes], bool, list[bytes]]:
        turn = Turn.current()
        broken, healthy = BrokenTransport(), CountingTransport()
        first, second = TurnTransport(broken, turn), TurnTransport(healthy, turn)  # type: ignore[arg-type]
        first.write(b"lost")
        second.write(b"answer")
        await asyncio.sleep(0)
        second.write(b"next")
        await asyncio.sleep(0)
        return healthy.writes, broken.closed, broken.writes

    assert asyncio.run(run()) == ([b"answer", b"next"], True, [])
