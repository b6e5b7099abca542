"""A worker's metrics, added up and written at most FLUSH_SECONDS later, are what a write per
check would have made (prometheus_client's private bucket values are used: pinned here)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Histogram

import authsvc.observe.metrics
from authsvc.check.verify import Verdict
from authsvc.observe.metrics import CHECK_BUCKETS, Metrics
from authsvc.policy import Decision, Reason

CHECKS = [
    (Verdict(Reason.OK, Decision.ALLOW, {"exp": 1}, cached=True), 0.00003),
    (Verdict(Reason.OK, Decision.ALLOW, {"exp": 1}), 0.0004),
    (Verdict(Reason.EXPIRED, Decision.DENY), 0.0001),
    (Verdict(Reason.EXPIRED, Decision.DENY), 0.07),  # past the last bucket: +Inf
    (Verdict(Reason.BINDING_MISMATCH, Decision.MONITOR), 0.00005),  # on a bound: its bucket
]


def samples(metrics: Metrics, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in metrics._registry.collect()
        if family.name == name
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_counts_are_written_within_the_flush_interval_not_per_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(authsvc.observe.metrics, "FLUSH_SECONDS", 0.05)
    metrics = Metrics()

    async def checks() -> tuple[float, float]:
        for verdict, seconds in CHECKS:
            metrics.record(verdict, seconds)
        await asyncio.sleep(0)
        after_a_turn = sum(samples(metrics, "authsvc_decisions").values())
        await asyncio.sleep(0.1)
        return after_a_turn, sum(samples(metrics, "authsvc_decisions").values())

    assert asyncio.run(checks()) == (0, len(CHECKS))
    decisions = samples(metrics, "authsvc_decisions")
    assert (
        decisions[("authsvc_decisions_total", (("decision", "deny"), ("reason", "expired")))] == 2
    )


def test_the_exposition_includes_this_workers_pending_counts() -> None:
    metrics = Metrics()

    async def scrape() -> bytes:
        metrics.record(*CHECKS[0])
        return metrics.exposition()

    assert b'authsvc_decisions_total{decision="allow",reason="ok"} 1.0' in asyncio.run(scrape())


def test_the_added_up_histogram_is_the_one_observe_makes() -> None:
    metrics = Metrics()
    reference = Histogram(
        "authsvc_check_seconds", "", buckets=CHECK_BUCKETS, registry=CollectorRegistry()
    )

    async def turn() -> None:
        for verdict, seconds in CHECKS:
            metrics.record(verdict, seconds)
            reference.observe(seconds)
        metrics.flush()

    asyncio.run(turn())
    observed = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for sample in next(iter(reference.collect())).samples
        if not sample.name.endswith("_created")
    }
    assert samples(metrics, "authsvc_check_seconds") == observed
