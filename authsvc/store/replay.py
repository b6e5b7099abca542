"""Where single-use message signatures are remembered, so that each is accepted once.

A Redis or Valkey server shared by every replica (`redis://`, `rediss://`, `unix://`): one
atomic `SET key 1 NX PX ttl` per claim, bounded by a timeout, on a client that reconnects by
itself; or this process's memory (`memory`: each worker and replica then accepts a signature
once). Every failure (no store configured, a store down, slow or refusing) is StoreUnavailable:
the caller denies, never allows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from authsvc.config import REPLAY_STORE_MEMORY, Settings

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


class RedisReplayStore:
    """A Redis or Valkey server shared by every replica."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self._url = url
        self._timeout = timeout_seconds
        # Made on the first claim, in the worker's own event loop (after gunicorn's fork).
        self._client: redis.asyncio.Redis | None = None

    def _connected(self) -> redis.asyncio.Redis:
        if self._client is None:
            self._client = redis.asyncio.Redis.from_url(
                self._url,
                socket_connect_timeout=self._timeout,
                socket_timeout=self._timeout,
                # No retry inside the timeout: a check waits at most that long, then denies.
                retry=Retry(NoBackoff(), 0),
            )
        return self._client

    async def claim(self, key: str, ttl_ms: int) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                return bool(await self._connected().set(key, b"1", nx=True, px=ttl_ms))
        except (TimeoutError, RedisError, OSError) as error:
            raise StoreUnavailable(f"{type(error).__name__} from the replay store") from None


def replay_store(settings: Settings) -> ReplayStore:
    """The store `settings` name."""
    location = settings.replay_store
    if location is None:
        return NoReplayStore()
    if location == REPLAY_STORE_MEMORY:
        return MemoryReplayStore()
    return RedisReplayStore(location, settings.replay_store_timeout_ms / 1000)
