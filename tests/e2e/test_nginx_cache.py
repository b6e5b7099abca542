"""The snippet's optional cache of allow answers: fast, and never wrong."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.servers import Stack
from tests.support.signatures import ipk_token, request, sign
from tests.support.tokens import bound_token, pay_for
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("nginx_available")]

AUTHORIZATION = "Bearer cached-user"


@pytest.fixture
def cached(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path, auth_cache=True)
    yield stack
    stack.stop()


def decisions(stack: Stack) -> int:
    return stack.authsvc.log_text().count('"decision"')


def headers(tok: str, authorization: str = AUTHORIZATION) -> dict[str, str]:
    return {"Approov-Token": tok, "Authorization": authorization}


def settle(stack: Stack, count: int) -> None:
    wait_until(lambda: decisions(stack) >= count, what=f"{count} decision lines")


def after_what_was_sent(stack: Stack) -> None:
    """Once a request sent now (an uncacheable deny) is logged, so is every check sent before
    it: a missing line is then absent, not late."""
    marker = f"/api/marker-{time.monotonic_ns()}"
    assert stack.send("GET", marker, headers("not-a-token")).status == 401
    wait_until(lambda: marker in stack.authsvc.log_text(), what="the marker's decision line")


def test_a_repeated_allowed_token_is_answered_by_nginx_from_its_cache(cached: Stack) -> None:
    tok = bound_token(AUTHORIZATION.encode())
    for _ in range(5):
        assert cached.send("GET", "/api/x", headers(tok)).status == 200
    after_what_was_sent(cached)
    assert decisions(cached) == 2  # the first of the five, and the marker


def test_a_cached_allow_is_never_served_for_another_binding_value(cached: Stack) -> None:
    tok = bound_token(AUTHORIZATION.encode())
    assert cached.send("GET", "/api/x", headers(tok)).status == 200
    assert cached.send("GET", "/api/x", headers(tok, "Bearer someone-else")).status == 401


def test_a_cached_allow_is_never_served_for_another_policy(cached: Stack) -> None:
    tok = bound_token(b"Bearer x")
    assert cached.send("GET", "/login", {"Approov-Token": tok}).status == 200  # token only
    assert cached.send("GET", "/api/x", {"Approov-Token": tok}).status == 401  # binding required


def test_a_cached_allow_never_outlives_its_token(cached: Stack) -> None:
    exp = int(time.time()) + 2
    tok = bound_token(AUTHORIZATION.encode(), exp=exp)
    assert cached.send("GET", "/api/x", headers(tok)).status == 200
    wait_until(lambda: time.time() >= exp + 0.01, timeout=5, what="the token's exp")
    assert cached.send("GET", "/api/x", headers(tok)).status == 401


def test_denials_are_not_cached(cached: Stack) -> None:
    tok = "not-a-token"
    for _ in range(3):
        assert cached.send("GET", "/api/x", headers(tok)).status == 401
    settle(cached, 3)


def test_a_cached_allow_is_logged_by_nginx_with_its_reason(cached: Stack) -> None:
    """authsvc never sees a cached allow: nginx's access log must hold that decision."""
    tok = bound_token(AUTHORIZATION.encode())
    for _ in range(3):
        assert cached.send("GET", "/api/cached-log", headers(tok)).status == 200
    wait_until(lambda: cached.nginx.access_log().count("/api/cached-log") >= 3, what="3 lines")
    lines = [x for x in cached.nginx.access_log().splitlines() if "/api/cached-log" in x]
    assert ["auth_cache=HIT" in line for line in lines] == [False, True, True]
    assert all(" approov=ok " in line for line in lines)


def test_a_signed_allow_is_never_cached(cached: Stack) -> None:
    """A message signature covers one request: an allow on a signing route must not answer
    the next request with the same token (the cache key holds no signature or client URL)."""
    tok = ipk_token(pay=pay_for(AUTHORIZATION.encode()))
    url = f"http://127.0.0.1:{cached.port}/signed/a"
    signed = sign(request("GET", url, token_value=tok, headers=[("Authorization", AUTHORIZATION)]))
    assert cached.send("GET", "/signed/a", dict(signed.headers.items())).status == 200
    assert cached.send("GET", "/signed/b", headers(tok)).status == 401
