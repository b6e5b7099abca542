"""Single-use message signatures through the app: a signature accepted once, its replay
refused (allowed as `monitor` where monitor mode lets failures through), a store that cannot
say denies, and nothing but a single-use route ever asks the store. With a real Redis and real
servers: tests/e2e/test_replay.py."""

from __future__ import annotations

from typing import Any

import pytest

from authsvc.policy import BindingMode, SigningMode
from authsvc.store.replay import MemoryReplayStore, StoreUnavailable
from tests.app.service import Service
from tests.app.test_signing_http import NGINX_CONTEXT
from tests.support.signatures import Request, request, sign

ROUTE = "/auth-signing-single-use"


class SpyStore(MemoryReplayStore):
    """This process's memory, and every claim asked of it."""

    def __init__(self, fails: bool = False) -> None:
        super().__init__()
        self.claims: list[tuple[str, int]] = []
        self._fails = fails

    async def claim(self, key: str, ttl_ms: int) -> bool:
        self.claims.append((key, ttl_ms))
        if self._fails:
            raise StoreUnavailable("the store is down")
        return await super().claim(key, ttl_ms)


def single_use_service(store: SpyStore | None = None, **overrides: Any) -> Service:
    return Service(replay_store=store or SpyStore(), binding_mode=BindingMode.OFF, **overrides)


def signed() -> list[tuple[bytes, bytes]]:
    message: Request = sign(request())
    return [*message.header_pairs(), *NGINX_CONTEXT]


def test_a_signature_is_accepted_once_and_its_replay_refused() -> None:
    service, headers = single_use_service(), signed()
    first, replay = service.check(headers, path=ROUTE), service.check(headers, path=ROUTE)
    assert (first.status, first.reason) == (204, "ok")
    assert (replay.status, replay.reason) == (401, "message_replayed")
    assert service.last_line()["reason"] == "message_replayed"


def test_two_signatures_of_the_same_request_are_two_uses() -> None:
    """ECDSA signs anew each time: the app sending a request twice signs it twice."""
    service = single_use_service()
    assert service.check(signed(), path=ROUTE).reason == "ok"
    assert service.check(signed(), path=ROUTE).reason == "ok"


@pytest.mark.parametrize(
    ("path", "overrides"),
    [
        (ROUTE + "-monitor", {}),
        (ROUTE, {"abort_on_invalid_signature": False}),
    ],
    ids=["monitored route", "signature monitor setting"],
)
def test_a_replay_where_monitor_mode_lets_failures_through_is_allowed_as_monitor(
    path: str, overrides: dict[str, Any]
) -> None:
    service, headers = single_use_service(**overrides), signed()
    service.check(headers, path=path)
    replay = service.check(headers, path=path)
    assert (replay.status, replay.reason) == (204, "message_replayed")
    assert service.last_line()["decision"] == "monitor"


@pytest.mark.parametrize("path", [ROUTE, ROUTE + "-monitor"])
def test_a_store_that_cannot_say_denies_even_a_monitored_route(path: str) -> None:
    service = single_use_service(SpyStore(fails=True))
    result = service.check(signed(), path=path)
    assert (result.status, result.reason) == (401, "replay_store_unavailable")


def test_without_a_store_configured_a_single_use_route_denies() -> None:
    service = Service(binding_mode=BindingMode.OFF)
    assert service.check(signed(), path=ROUTE).reason == "replay_store_unavailable"


@pytest.mark.parametrize(
    "path", ["/auth", "/auth-signing-required", "/auth-signing-if-present", "/auth-signing-off"]
)
def test_a_route_that_is_not_single_use_never_asks_the_store(path: str) -> None:
    store = SpyStore()
    service = single_use_service(store, signing_mode=SigningMode.REQUIRED)
    for _ in range(2):
        assert service.check(signed(), path=path).status == 204
    assert store.claims == []


def test_a_refused_signature_is_not_claimed() -> None:
    """Only an allowed signature is recorded: a denied request does not burn it."""
    store = SpyStore()
    service = single_use_service(store)
    tampered = [(n, b"DELETE" if n == b"x-original-method" else v) for n, v in signed()]
    assert service.check(tampered, path=ROUTE).reason == "message_signature_mismatch"
    assert store.claims == []


def test_the_setting_makes_every_route_without_a_signing_part_single_use() -> None:
    service = single_use_service(signing_mode=SigningMode.SINGLE_USE)
    headers = signed()
    assert service.check(headers).reason == "ok"
    assert service.check(headers).reason == "message_replayed"


def test_metrics_count_claims_by_outcome_and_time_the_store() -> None:
    service, headers = single_use_service(), signed()
    service.check(headers, path=ROUTE)
    service.check(headers, path=ROUTE)
    lines = service.client.simulate_get("/metrics").text.splitlines()
    assert 'authsvc_replay_claims_total{outcome="first"} 1.0' in lines
    assert 'authsvc_replay_claims_total{outcome="replayed"} 1.0' in lines
    assert "authsvc_replay_store_seconds_count 2.0" in lines
