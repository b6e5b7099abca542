"""Single-use message signatures with the real parts: Debian's redis-server on loopback, two
`authsvc serve` instances sharing it (two replicas of a fleet), and nginx and Envoy running
their shipped files (route /payments/). A signature is accepted once by the whole fleet; a store
that stops answering makes single-use routes deny, and they accept again once it is back, with
no process restarted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.app.test_signing_http import NGINX_CONTEXT
from tests.conftest import require
from tests.e2e.app_requests import AUTHORIZATION
from tests.e2e.conftest import start_stack
from tests.e2e.servers import (
    REDIS_INSTALL_HINT,
    Authsvc,
    ProxiedStack,
    RedisServer,
    Reply,
    find_redis_server,
    send,
)
from tests.e2e.test_gateways import decision_for
from tests.support.signatures import SDK_COMPONENTS, ipk_token, request, sign
from tests.support.tokens import pay_for

pytestmark = pytest.mark.e2e

ROUTE = "/auth-binding-off-signing-single-use"
SKEW_SECONDS = 2


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    require(find_redis_server() is not None, REDIS_INSTALL_HINT)
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def fleet_member(root: Path, store: RedisServer) -> Authsvc:
    env = {
        "APPROOV_REPLAY_STORE": store.url,
        "APPROOV_SIGNATURE_CLOCK_SKEW_SECONDS": str(SKEW_SECONDS),
    }
    return Authsvc(root, env=env).start()


@pytest.fixture(scope="module")
def fleet(
    store: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Authsvc, Authsvc]]:
    """Two replicas sharing one replay store."""
    members = (
        fleet_member(tmp_path_factory.mktemp("replica-a"), store),
        fleet_member(tmp_path_factory.mktemp("replica-b"), store),
    )
    yield members
    for member in members:
        member.stop()


def signed_check() -> dict[str, str]:
    """A signed request as nginx's include describes it to authsvc."""
    message = sign(request())
    pairs = [*message.header_pairs(), *NGINX_CONTEXT]
    return {name.decode(): value.decode() for name, value in pairs}


def check(member: Authsvc, headers: dict[str, str], route: str = ROUTE) -> Reply:
    return send(member.port, "GET", route, headers)


def reasons(replies: list[Reply]) -> list[str]:
    return [reply.headers["x-approov-reason"] for reply in replies]


def test_a_signature_accepted_by_one_replica_is_refused_by_the_other(
    fleet: tuple[Authsvc, Authsvc],
) -> None:
    first, second = fleet
    headers = signed_check()
    replies = [check(first, headers), check(second, headers), check(first, headers)]
    assert [r.status for r in replies] == [204, 401, 401]
    assert reasons(replies) == ["ok", "message_replayed", "message_replayed"]


def test_of_identical_requests_sent_at_once_to_two_replicas_exactly_one_is_allowed(
    fleet: tuple[Authsvc, Authsvc],
) -> None:
    headers = signed_check()
    start = threading.Barrier(16)
    replies: list[Reply] = []

    def send_at_once(member: Authsvc) -> None:
        start.wait()
        replies.append(check(member, headers))

    threads = [threading.Thread(target=send_at_once, args=(fleet[n % 2],)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(reasons(replies)) == ["message_replayed"] * 15 + ["ok"]


def test_the_stored_key_lasts_no_longer_than_the_signatures_life_plus_the_skew(
    fleet: tuple[Authsvc, Authsvc], store: RedisServer
) -> None:
    client = redis.Redis.from_url(store.url)
    client.flushdb()
    signed_at = time.time()
    assert check(fleet[0], signed_check()).status == 204
    (key,) = client.keys("authsvc:replay:*")
    remaining_ms = client.pttl(key)
    # The SDKs' lifetime (15 s) from `created`, a whole second at or before signed_at.
    bound_ms = (int(signed_at) + 15 + SKEW_SECONDS - signed_at) * 1000
    assert 0 < remaining_ms <= bound_ms


@pytest.mark.parametrize("route", ["/auth-binding-off", "/auth-binding-off-signing-required"])
def test_a_route_that_is_not_single_use_never_touches_the_store(
    fleet: tuple[Authsvc, Authsvc], store: RedisServer, route: str
) -> None:
    client = redis.Redis.from_url(store.url)
    client.config_resetstat()
    for _ in range(3):
        assert check(fleet[0], signed_check(), route).status == 204
    assert "cmdstat_set" not in client.info("commandstats")


def test_a_store_stopped_mid_run_denies_then_accepts_again_once_it_is_back(
    tmp_path: Path,
) -> None:
    require(find_redis_server() is not None, REDIS_INSTALL_HINT)
    store = RedisServer(tmp_path).start()
    member = fleet_member(tmp_path, store)
    try:
        assert check(member, signed_check()).status == 204
        store.stop()
        started = time.monotonic()
        down = [check(member, signed_check()) for _ in range(5)]
        assert time.monotonic() - started < 2.5  # each within the 50 ms timeout, or refused
        assert reasons(down) == ["replay_store_unavailable"] * 5
        # The fleet stays in the load balancer: other routes serve on.
        assert send(member.port, "GET", "/readyz").status == 200
        assert check(member, signed_check(), "/auth-binding-off-signing-required").status == 204
        store.start()
        back = [check(member, signed_check()) for _ in range(3)]
        assert reasons(back) == ["ok"] * 3
    finally:
        member.stop()
        store.stop()
    log = member.log_text()
    assert "the replay store does not answer" in log
    assert "the replay store answers again" in log


# --- through the shipped front doors ---------------------------------------------------------


@pytest.fixture(scope="module", params=["nginx", "envoy"])
def door(
    request: pytest.FixtureRequest, store: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxiedStack]:
    gateway: str = request.param
    env = {"APPROOV_REPLAY_STORE": store.url}
    running = start_stack(gateway, tmp_path_factory.mktemp(f"replay-{gateway}"), env=env)
    yield running
    running.stop()


def test_through_the_proxy_a_payment_is_accepted_once_and_its_replay_never_reaches_the_backend(
    door: ProxiedStack,
) -> None:
    target = "/payments/transfer?amount=10"
    message = request(
        "POST",
        f"http://127.0.0.1:{door.port}{target}",
        token_value=ipk_token(pay=pay_for(AUTHORIZATION.encode())),
        headers=[("Authorization", AUTHORIZATION)],
        body=b'{"to": "alice"}',
    )
    sign(message, components=(*SDK_COMPONENTS, "authorization"))
    headers = dict(message.headers.items())
    before = door.backend_requests()
    first = door.send("POST", target, headers, message.body)
    assert first.status == 200, first.body
    replay = door.send("POST", target, headers, message.body)
    assert replay.status == 401
    assert door.backend_requests() == before + 1
    assert decision_for(door, target)["reason"] == "message_replayed"


def test_a_memory_store_is_named_for_what_it_is_in_the_start_up_log(tmp_path: Path) -> None:
    member = Authsvc(tmp_path, env={"APPROOV_REPLAY_STORE": "memory"}).start()
    member.stop()
    log = member.log_text()
    assert "APPROOV_REPLAY_STORE=memory: each of the 2 workers, and each replica, accepts" in log
    assert "replay_store=memory (this process only" in log
