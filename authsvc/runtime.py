"""What a running authsvc is made of, loaded once from the environment: settings, keys, verifier,
replay store.

Settings are read by `Settings.from_env` alone, keys by `Runtime.from_settings` alone (the
CLI calls both at start-up, `load` does both for the server on HUP); the app is built from the
Runtime and reads nothing itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from authsvc.check.cache import CachingVerifier
from authsvc.check.signing import MessageSignatures
from authsvc.check.verify import Checker, Verifier
from authsvc.config import REPLAY_STORE_MEMORY, ConfigError, Settings
from authsvc.store.keysource import KeySource, load_account_signing_key
from authsvc.store.replay import MemoryReplayStore, NoReplayStore, ReplayStore


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    keys: KeySource
    verifier: Checker
    signatures: MessageSignatures
    """The message signing stage, after the token's checks (not cached: a signature is per
    request)."""
    replay_store: ReplayStore = field(default_factory=NoReplayStore)
    """Where single-use signatures are claimed (nothing is connected until the first claim)."""

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.time) -> Runtime:
        """Keys read (a ConfigError lists every problem) and the verifier built around them."""
        problems: list[str] = []
        try:
            keys = KeySource.from_settings(settings)
        except ConfigError as error:
            problems += error.problems
        try:
            account_key = load_account_signing_key(settings)
        except ConfigError as error:
            problems += error.problems
        if problems:
            raise ConfigError(problems)
        verifier = Verifier(
            keys,
            leeway_seconds=settings.leeway_seconds,
            issuer=settings.issuer,
            audience=settings.audience,
            abort_on_invalid_token=settings.abort_on_invalid_token,
            abort_on_invalid_binding=settings.abort_on_invalid_binding,
            clock=clock,
        )
        signatures = MessageSignatures(
            token_header=settings.token_header,
            max_age_seconds=settings.signature_max_age_seconds,
            clock_skew_seconds=settings.signature_clock_skew_seconds,
            abort_on_invalid_signature=settings.abort_on_invalid_signature,
            account_key=account_key,
            account_key_id=settings.account_signing_key_id,
            clock=clock,
        )
        size = settings.verified_cache_size
        checker = CachingVerifier(verifier, size) if size else verifier
        return cls(settings, keys, checker, signatures, replay_store(settings))


def load(environ: Mapping[str, str], clock: Callable[[], float] = time.time) -> Runtime:
    """Settings from `environ`, then keys and verifier; one ConfigError lists every problem."""
    return Runtime.from_settings(Settings.from_env(environ), clock)


def replay_store(settings: Settings) -> ReplayStore:
    """The store `settings` name."""
    location = settings.replay_store
    if location is None:
        return NoReplayStore()
    if location == REPLAY_STORE_MEMORY:
        return MemoryReplayStore()
    # Imported only here: the Redis client costs each worker ~7 MB where no store is used.
    from authsvc.store.redis_replay import RedisReplayStore  # noqa: PLC0415

    return RedisReplayStore(location, settings.replay_store_timeout_ms / 1000)
