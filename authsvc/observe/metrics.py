"""Prometheus metrics, correct across gunicorn workers.

With PROMETHEUS_MULTIPROC_DIR set (`authsvc serve` sets it), every worker writes its values to
that directory and `/metrics` adds them up, so any worker answers for all. Labels are bounded:
a decision and a reason code, never a token, a device id or a path.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
import os
from typing import TYPE_CHECKING, Any

from authsvc import __version__
from authsvc.check.cache import CachingVerifier
from authsvc.check.verify import Verdict
from authsvc.policy import Decision, Reason
from authsvc.store.keysource import KeySource

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger(__name__)
# Verification takes tens of microseconds; a miss that parses a big token, a few hundred.
# How far behind the decisions a worker's metrics may be (a scrape every 15 s or more).
FLUSH_SECONDS = 1.0
CHECK_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)
# A claim in the replay store: a loopback round trip is ~0.1 ms, the timeout 50 ms by default.
REPLAY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
REPLAY_OUTCOMES = ("first", "replayed", "unavailable")


class Metrics:
    def __init__(self) -> None:
        # prometheus_client decides, when first imported, whether values live in this process
        # or in PROMETHEUS_MULTIPROC_DIR: import it only once the server has set that up.
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram  # noqa: PLC0415

        self._failed = False
        self._counts: dict[tuple[Decision, Reason], int] = {}
        self._cache: CachingVerifier | None = None
        self._cache_counted = (0, 0)  # its hits and misses written so far
        self._statuses: dict[str, int] = {}
        self._replays: list[tuple[str, float]] = []
        self._seconds = [0] * (len(CHECK_BUCKETS) + 1)  # per bucket, the last one +Inf
        self._seconds_sum = 0.0
        self._registry = CollectorRegistry()
        registry = self._registry
        self.decisions = Counter(
            "authsvc_decisions", "Decisions on /auth.", ["decision", "reason"], registry=registry
        )
        self.check_seconds = Histogram(
            "authsvc_check_seconds",
            "Time authsvc spends on one check: from its parsed request head to its answer"
            " written (the token's rules, the signature's, the answer's headers).",
            buckets=CHECK_BUCKETS,
            registry=registry,
        )
        self.cache_lookups = Counter(
            "authsvc_cache_lookups",
            "Lookups in the cache of allowed verdicts, by result (hit or miss); none with"
            " the cache off, nor for credentials it cannot hold (two tokens, none).",
            ["result"],
            registry=registry,
        )
        self.approov_statuses = Counter(
            "authsvc_approov_status",
            "Checks by the token fetch status the app reported (Approov-Status, or a status"
            " name in the token header), on allows and denials alike; `other` for a value"
            " outside the SDKs' names. A check that reported none is not counted here.",
            ["status"],
            registry=registry,
        )
        self.replay_claims = Counter(
            "authsvc_replay_claims",
            "Claims of single-use signatures in the replay store, by outcome: first (allowed),"
            " replayed (refused: message_replayed), unavailable (refused: the store down, slow"
            " or not configured).",
            ["outcome"],
            registry=registry,
        )
        self.replay_seconds = Histogram(
            "authsvc_replay_store_seconds",
            "Time to claim a single-use signature in the replay store, its timeout included.",
            buckets=REPLAY_BUCKETS,
            registry=registry,
        )
        self.keys = Gauge(
            "authsvc_keys", "Keys in use.", multiprocess_mode="livemax", registry=registry
        )
        self.keys_loaded = Gauge(
            "authsvc_keys_loaded_timestamp_seconds",
            "When the keys in use were loaded (unix time); key-set age = time() - this.",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.keys_last_load_ok = Gauge(
            "authsvc_keys_last_load_success",
            "1 if the last key load (start-up, HUP reload, JWKS refresh) succeeded, else 0.",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.build = Gauge(
            "authsvc_build_info",
            "Version and the algorithms the configured keys allow.",
            ["version", "algorithms"],
            multiprocess_mode="livemax",
            registry=registry,
        )

    # The labelled series, looked up once each: labels() costs as much as the write itself.
    @functools.cache  # noqa: B019 - one Metrics per worker, a bounded set of label values
    def _decision(self, decision: Decision, reason: Reason) -> Any:
        return self.decisions.labels(decision.value, reason.value)

    @functools.cache  # noqa: B019 - the status vocabulary is bounded (authsvc.policy)
    def _approov_status(self, status: str) -> Any:
        return self.approov_statuses.labels(status)

    def record_replay(self, outcome: str, seconds: float) -> None:
        """Count a claim in the replay store (REPLAY_OUTCOMES) and its time; written with the
        decisions. A few per second at most: the store's own round trip dwarfs this."""
        first = not self._replays and not self._counts
        self._replays.append((outcome, seconds))
        if first:
            self._flush_later()

    def watch(self, keys: KeySource) -> None:
        """Keep the key gauges current as `keys` reloads."""
        algorithms = ",".join(sorted(keys.current.algorithms)) or "none"
        self.build.labels(version=__version__, algorithms=algorithms).set(1)
        keys.on_load(self._keys_loaded)
        self._keys_loaded(keys)

    def watch_cache(self, cache: CachingVerifier) -> None:
        """Count `cache`'s lookups (written with the decisions)."""
        self._cache = cache

    def _keys_loaded(self, keys: KeySource) -> None:
        self.keys.set(len(keys.current.keys))
        self.keys_loaded.set(keys.loaded_at)
        self.keys_last_load_ok.set(1 if keys.last_load_ok else 0)

    def record(self, verdict: Verdict, seconds: float, approov_status: str | None = None) -> None:
        """Count a decision, and the fetch status the app reported with it. Inside an event
        loop the counts are added up and written at most FLUSH_SECONDS later (and before
        `/metrics` answers, and when the worker stops): a write to the multiprocess files
        costs more than a check's own work."""
        counts = self._counts
        first = not counts
        key = (verdict.decision, verdict.reason)
        counts[key] = counts.get(key, 0) + 1
        if approov_status is not None:
            self._statuses[approov_status] = self._statuses.get(approov_status, 0) + 1
        self._seconds[bisect.bisect_left(CHECK_BUCKETS, seconds)] += 1
        self._seconds_sum += seconds
        if first and not self._replays:
            self._flush_later()

    def _flush_later(self) -> None:
        try:
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
        except RuntimeError:  # no event loop: nothing would flush it later
            self.flush()

    def flush(self) -> None:
        """Write the pending counts; a metrics failure (e.g. a full disk) never fails a request."""
        counts, self._counts = self._counts, {}
        seconds, self._seconds = self._seconds, [0] * (len(CHECK_BUCKETS) + 1)
        seconds_sum, self._seconds_sum = self._seconds_sum, 0.0
        statuses, self._statuses = self._statuses, {}
        replays, self._replays = self._replays, []
        try:
            for outcome, replay_seconds in replays:
                self.replay_claims.labels(outcome).inc()
                self.replay_seconds.observe(replay_seconds)
            for (decision, reason), count in counts.items():
                self._decision(decision, reason).inc(count)
            self._count_cache_lookups()
            for status, count in statuses.items():
                self._approov_status(status).inc(count)
            _add_observations(self.check_seconds, seconds, seconds_sum)
        except Exception as error:
            if not self._failed:
                log.error("metrics not recorded (logged once): %r", error)
            self._failed = True

    def _count_cache_lookups(self) -> None:
        if self._cache is None:
            return
        hits, misses = self._cache.hits, self._cache.misses
        counted_hits, counted_misses = self._cache_counted
        if hits > counted_hits:
            self.cache_lookups.labels("hit").inc(hits - counted_hits)
        if misses > counted_misses:
            self.cache_lookups.labels("miss").inc(misses - counted_misses)
        self._cache_counted = (hits, misses)

    def exposition(self) -> bytes:
        """The text format: every worker's values when in multiprocess mode, else this one's;
        this worker's pending counts are written first."""
        self.flush()
        from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415
        from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

        registry: CollectorRegistry = self._registry
        if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def _add_observations(histogram: Any, bucket_counts: list[int], total: float) -> None:
    """What `histogram.observe` of each check would have written, added up per bucket.

    prometheus_client's public `observe` costs 3.4 µs a call in multiprocess mode (measured:
    4% of a cached check), so this writes its per-bucket values (not cumulative) and its sum
    directly. Its internals are pinned: pyproject.toml bounds the version, and
    tests/unit/observe/test_metrics.py compares the result with `observe`'s own.
    """
    for bucket, count in zip(histogram._buckets, bucket_counts, strict=True):
        if count:
            bucket.inc(count)
    histogram._sum.inc(total)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
