"""The connection's transport as authsvc's HTTP protocol writes to it: the answers of one
event-loop turn sent together."""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

log = logging.getLogger(__name__)


class Turn:
    """The connections of one event loop holding writes in its current turn: sent at its end,
    with one callback for them all."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._holding: list[TurnTransport] = []

    @classmethod
    def current(cls) -> Turn | None:
        """The running event loop's turn; None outside one (nothing would send it)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        turn = _TURNS.get(loop)
        if turn is None:
            turn = _TURNS[loop] = cls(loop)
        return turn

    def hold(self, transport: TurnTransport) -> None:
        if not self._holding:
            self._loop.call_soon(self._send)
        self._holding.append(transport)

    def _send(self) -> None:
        holding, self._holding = self._holding, []
        for transport in holding:
            try:
                transport.send()
            except Exception as error:  # one connection's failure holds back no other answer
                log.error("an answer could not be written, its connection aborted: %r", error)
                transport.abort()


_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Turn] = weakref.WeakKeyDictionary()


class TurnTransport(asyncio.Transport):
    """A connection's transport whose writes of one event-loop turn leave together, once the
    turn's reads are all answered, and in the order they were made.

    Written at once, each answer woke its client (a proxy, waiting in epoll) while authsvc went
    on parsing the next connection's request: a wakeup per answer, and requests then arriving
    one at a time. Measured with `make profile` (one worker, wrk straight at it): ~1.5x the
    checks a second on every path (bench/README.md, round 4). A close sends what is held
    first; what a closed connection still holds is dropped.
    """

    def __init__(self, transport: asyncio.Transport, turn: Turn | None) -> None:
        """`turn`: the event loop's (Turn.current()); None writes at once."""
        super().__init__()
        self._transport = transport
        self._turn = turn
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._turn is None:
            self._transport.write(data)
            return
        if not self._held:
            self._turn.hold(self)
        self._held.append(bytes(data))

    def send(self) -> None:
        """Write what is held now."""
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.send()
        self._transport.close()

    def abort(self) -> None:
        self._held = []
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()
