"""The replay store on a Redis or Valkey server shared by every replica (authsvc.store.replay
says what a replay store is)."""

from __future__ import annotations

import asyncio

import redis.asyncio
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from authsvc.store.replay import StoreUnavailable


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
