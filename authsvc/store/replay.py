"""Where single-use message signatures are remembered, so that each is accepted once.

A Redis or Valkey server shared by every replica (`redis://`, `rediss://`, `unix://`;
authsvc.store.redis_replay): one atomic `SET key 1 NX PX ttl` per claim, bounded by a timeout,
on a client that reconnects by itself; or this process's memory (`memory`: each worker and
replica then accepts a signature once). Every failure (no store configured, a store down,
slow or refusing) is StoreUnavailable: the caller denies, never allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

# A process's memory holds at most this many live signatures; past it, a claim is refused
# (unavailable) rather than memory grown without end.
MAX_MEMORY_ENTRIES = 1_000_000
_SWEEP_EVERY = 4096


class StoreUnavailable(Exception):
    """The store could not say whether a signature was used before."""


class ReplayStore(Protocol):
    async def claim(self, key: str, ttl_ms: int) -> bool:
        """True if `key` was not held and now is (for `ttl_ms`); False if it was: a replay."""
        ...


class NoReplayStore:
    async def claim(self, key: str, ttl_ms: int) -> bool:
        raise StoreUnavailable("no replay store configured (APPROOV_REPLAY_STORE)")


class MemoryReplayStore:
    """This process's memory: a signature is accepted once per worker."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._expiries: dict[str, float] = {}
        self._clock = clock
        self._claims = 0

    async def claim(self, key: str, ttl_ms: int) -> bool:
        now = self._clock()
        expiry = self._expiries.get(key)
        if expiry is not None and expiry > now:
            return False
        self._claims += 1
        if self._claims % _SWEEP_EVERY == 0 or len(self._expiries) >= MAX_MEMORY_ENTRIES:
            self._expiries = {k: e for k, e in self._expiries.items() if e > now}
        if len(self._expiries) >= MAX_MEMORY_ENTRIES:
            raise StoreUnavailable(f"the memory replay store holds {MAX_MEMORY_ENTRIES} signatures")
        self._expiries[key] = now + ttl_ms / 1000
        return True
