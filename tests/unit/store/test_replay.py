"""The replay store's contract, with no server: this process's memory, no store at all, and a
Redis store whose server refuses connections or never answers (a real socket that stalls).
The same store against a real redis-server: tests/e2e/test_replay.py."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from authsvc.config import Settings
from authsvc.runtime import replay_store
from authsvc.store.redis_replay import RedisReplayStore
from authsvc.store.replay import MemoryReplayStore, NoReplayStore, StoreUnavailable
from demo.processes import free_port
from tests.support.tokens import DUMMY_SECRET


def test_memory_accepts_a_key_once_until_its_time_is_up() -> None:
    now = [100.0]
    store = MemoryReplayStore(clock=lambda: now[0])

    async def claims() -> list[bool]:
        first = await store.claim("k", 1500)
        again = await store.claim("k", 1500)
        now[0] += 1.6
        later = await store.claim("k", 1500)
        return [first, again, later]

    assert asyncio.run(claims()) == [True, False, True]


def test_without_a_store_every_claim_is_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        asyncio.run(NoReplayStore().claim("k", 1000))


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        (None, NoReplayStore),
        ("memory", MemoryReplayStore),
        ("redis://127.0.0.1:6379/0", RedisReplayStore),
        ("unix:///run/redis/redis.sock", RedisReplayStore),
    ],
)
def test_the_setting_names_the_store(location: str | None, kind: type) -> None:
    settings = dataclasses.replace(Settings(secret=DUMMY_SECRET), replay_store=location)
    assert isinstance(replay_store(settings), kind)


def test_a_store_that_refuses_connections_is_unavailable_at_once() -> None:
    store = RedisReplayStore(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.05)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        asyncio.run(store.claim("k", 1000))
    assert time.monotonic() - started < 1


@pytest.fixture
def stalled_port() -> Iterator[int]:
    """A loopback port whose listener accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_a_store_that_never_answers_is_unavailable_after_the_timeout(stalled_port: int) -> None:
    store = RedisReplayStore(f"redis://127.0.0.1:{stalled_port}/0", timeout_seconds=0.05)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        asyncio.run(store.claim("k", 1000))
    assert 0.04 < time.monotonic() - started < 1


def test_the_redis_client_is_loaded_only_where_a_redis_store_is_configured() -> None:
    """It costs a worker ~7 MB (measured): a server with no store, or the memory one, never
    imports it."""
    code = (
        "import sys\n"
        "from authsvc.config import Settings\n"
        "from authsvc.http.app import create_app\n"
        "from authsvc.runtime import Runtime\n"
        "from tests.support.tokens import DUMMY_SECRET\n"
        "for store in (None, 'memory'):\n"
        "    create_app(Runtime.from_settings(Settings(secret=DUMMY_SECRET, replay_store=store)))\n"
        "print('redis' in sys.modules)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "False"
