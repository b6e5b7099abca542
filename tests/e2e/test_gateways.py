"""The same checks through every proxy authsvc ships a configuration for: a real nginx (the
include and example site), Envoy (ext_authz) and Caddy (forward_auth), each running its shipped
file in front of the real `authsvc serve` (shipped defaults) and a counting backend."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from demo.gateways import GATEWAYS
from tests.conftest import gateway_available
from tests.e2e.app_requests import AUTHORIZATION, METHODS, approov, valid_token
from tests.e2e.conftest import FRONT_DOORS, start_stack
from tests.e2e.servers import GatewayStack, ProxiedStack, Stack
from tests.support.tokens import OTHER_SECRET, b64url, bound_token, json_bytes, token
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def unsigned_token() -> str:
    """alg none, no signature: the classic forgery."""
    header = b64url(json_bytes({"alg": "none", "typ": "JWT"}))
    payload = b64url(json_bytes({"exp": int(time.time()) + 300}))
    return (header + b"." + payload + b".").decode()


def decision_for(stack: ProxiedStack, uri: str) -> dict[str, Any]:
    """authsvc's decision line for the request whose original URI was `uri`."""

    def logged() -> dict[str, Any] | None:
        for line in reversed(stack.authsvc.log_text().splitlines()):
            if line.startswith("{") and json.loads(line).get("uri") == uri:
                return dict(json.loads(line))
        return None

    return wait_until(logged, what=f"the decision line for {uri}")


# --- allow: the request reaches the backend intact -------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_valid_token_reaches_the_backend_with_method_path_and_query(
    stack: ProxiedStack, method: str
) -> None:
    reply = stack.send(method, "/api/items/7?colour=red&size=2", approov())
    assert reply.status == 200
    if method != "HEAD":
        seen = reply.json()
        assert (seen["method"], seen["path"], seen["query"]) == (
            method,
            "/api/items/7",
            "colour=red&size=2",
        )


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_request_body_of_over_a_mebibyte_reaches_the_backend_byte_for_byte(
    stack: ProxiedStack, method: str
) -> None:
    body = bytes(range(256)) * 4100 + b"tail"  # 1,049,604 bytes
    reply = stack.send(method, "/api/upload", approov(), body)
    assert reply.status == 200
    seen = reply.json()
    assert (seen["body_bytes"], seen["body_sha256"]) == (
        len(body),
        hashlib.sha256(body).hexdigest(),
    )


def test_decision_log_records_the_clients_method_and_uri(stack: ProxiedStack) -> None:
    stack.send("DELETE", "/api/log-check/9?q=1", approov())
    line = decision_for(stack, "/api/log-check/9?q=1")
    assert (line["method"], line["decision"], line["binding"]) == ("DELETE", "allow", "required")


# --- deny: 401, the reason logged, and the backend never sees the request --------------------

# Headers made when the test runs: a token minted at collection could expire before it is used.
DENIALS: list[tuple[str, Callable[[], dict[str, str]], str]] = [
    ("no-token", lambda: {"Authorization": AUTHORIZATION}, "token_missing"),
    ("expired", lambda: approov(valid_token(ttl=-60)), "expired"),
    (
        "bad-signature",
        lambda: approov(bound_token(AUTHORIZATION.encode(), secret=OTHER_SECRET)),
        "signature_invalid",
    ),
    ("alg-none", lambda: approov(unsigned_token()), "token_malformed"),
    ("garbage", lambda: approov("not-a-token"), "token_malformed"),
    ("binding-mismatch", lambda: approov(bound_token(b"Bearer someone-else")), "binding_mismatch"),
    ("no-binding-header", lambda: approov(authorization=None), "binding_header_missing"),
]


@pytest.mark.parametrize(("case", "headers", "reason"), DENIALS, ids=[d[0] for d in DENIALS])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_denied_request_gets_401_with_its_reason_and_never_reaches_the_backend(
    stack: ProxiedStack,
    case: str,
    headers: Callable[[], dict[str, str]],
    reason: str,
    method: str,
) -> None:
    before = stack.backend_requests()
    uri = f"/api/deny-{case}-{method}"
    reply = stack.send(method, uri, headers(), b"payload" if method == "POST" else None)
    assert reply.status == 401
    assert stack.backend_requests() == before
    assert decision_for(stack, uri)["reason"] == reason


def test_deny_reason_is_not_shown_to_the_client(stack: ProxiedStack) -> None:
    reply = stack.send("GET", "/api/hidden-reason", approov("not-a-token"))
    assert reply.status == 401
    assert "x-approov-reason" not in {name.lower() for name in reply.headers}


# --- the policy is the gateway's; the client's path cannot weaken it -------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/binding-off",
        "/api/auth-binding-off",
        "/api/binding-off/x",
        "/login/../api/x",
        "/login/%2e%2e/api/x",
        "/login/%2E%2E/api/x",
        "//login/../api/x",
        "/auth-binding-off",
        "/auth/binding-off",
        "/auth-binding-off/../api/x",
        # the monitored route /v2/ lets failures through: none of these may reach it
        "/api/-monitor",
        "/api/x-monitor",
        "/api/auth-monitor",
        "/v2/../api/x",
        "/v2/%2e%2e/api/x",
        "/v2/%2E%2E/api/x",
        "//v2/../api/x",
        "/auth-monitor",
        "/auth/-monitor",
        "/auth-monitor/../api/x",
    ],
)
def test_client_path_cannot_weaken_the_policy(stack: ProxiedStack, path: str) -> None:
    """A token without `pay` is refused wherever the path lands: on /api/ (pinned binding-required)
    and elsewhere (authsvc's default, required), whatever the client appends or encodes."""
    before = stack.backend_requests()
    reply = stack.send("GET", path, approov(token()))
    assert reply.status in {401, 404}, reply  # 404: a gateway refusing the path outright
    assert stack.backend_requests() == before


def test_the_monitored_route_lets_a_failure_through_as_monitor_with_no_device_id(
    stack: ProxiedStack,
) -> None:
    """/v2/ is on `-monitor` in every shipped file: a forged token reaches the backend, logged
    as `monitor` with its reason, and no device id comes with it (nothing of it is trusted)."""
    forged = bound_token(AUTHORIZATION.encode(), secret=OTHER_SECRET, did="forged-device")
    reply = stack.send("GET", "/v2/rollout", {**approov(forged), "X-Approov-Did": "from-client"})
    assert reply.status == 200
    assert reply.json()["approov_did"] in ([], [""])
    line = decision_for(stack, "/v2/rollout")
    assert (line["decision"], line["reason"], line["monitor"]) == (
        "monitor",
        "signature_invalid",
        True,
    )


def test_the_monitored_route_passes_a_valid_token_as_a_plain_allow(stack: ProxiedStack) -> None:
    reply = stack.send("GET", "/v2/valid", approov())
    assert (reply.status, reply.json()["approov_did"]) == (200, ["device-42"])
    assert decision_for(stack, "/v2/valid")["decision"] == "allow"


def test_token_only_route_allows_a_token_without_authorization(stack: ProxiedStack) -> None:
    reply = stack.send("POST", "/login", approov(token(), authorization=None), b"user=1")
    assert (reply.status, reply.json()["path"]) == (200, "/login")


def test_token_only_route_still_refuses_a_missing_token(stack: ProxiedStack) -> None:
    before = stack.backend_requests()
    assert stack.send("POST", "/login", {}, b"user=1").status == 401
    assert stack.backend_requests() == before


def test_open_routes_need_no_token(stack: ProxiedStack) -> None:
    assert stack.send("GET", "/healthz").status == 200
    assert stack.send("GET", "/public/info").status == 200


# --- the verified device id, never the client's ----------------------------------------------


def test_verified_device_id_reaches_the_backend_and_a_client_sent_one_is_replaced(
    stack: ProxiedStack,
) -> None:
    reply = stack.send("GET", "/api/me", {**approov(), "X-Approov-Did": "forged-device"})
    assert reply.json()["approov_did"] == ["device-42"]


def test_client_sent_device_id_never_reaches_the_backend_when_the_token_has_none(
    stack: ProxiedStack,
) -> None:
    tok = bound_token(AUTHORIZATION.encode())
    reply = stack.send("GET", "/api/me", {**approov(tok), "X-Approov-Did": "forged-device"})
    assert reply.json()["approov_did"] in ([], [""])  # dropped, or replaced by authsvc's empty one


def test_client_sent_device_id_never_reaches_the_backend_on_an_open_route(
    stack: ProxiedStack,
) -> None:
    reply = stack.send("GET", "/public/me", {"X-Approov-Did": "forged-device"})
    assert reply.json()["approov_did"] == []


# --- keep-alive load: exact statuses, no 5xx --------------------------------------------------


def test_300_mixed_requests_on_3_keepalive_connections_get_exact_statuses(
    stack: ProxiedStack,
) -> None:
    before = stack.backend_requests()
    allowed_headers, denied_headers = approov(), approov(bound_token(b"Bearer other"))
    statuses: Counter[int] = Counter()
    allowed_sent = 0
    clients = [stack.client() for _ in range(3)]
    try:
        for i in range(330):
            allow = i % 3 != 0
            method = METHODS[i % len(METHODS)]
            body = b"b" * (i % 50) if method in {"POST", "PUT", "PATCH"} else None
            headers = allowed_headers if allow else denied_headers
            reply = clients[i % 3].send(method, f"/api/items?i={i}", headers, body)
            statuses[reply.status] += 1
            allowed_sent += allow
            assert reply.status == (200 if allow else 401), (i, reply)
    finally:
        for client in clients:
            client.close()
    assert statuses == Counter({200: allowed_sent, 401: 330 - allowed_sent})
    assert stack.backend_requests() - before == allowed_sent
    if isinstance(stack, Stack):  # nginx retries a failed subrequest: none may have failed
        assert "upstream" not in stack.nginx.error_log()


# --- authsvc down: fail closed, then recover without restarting the gateway -------------------


def test_authsvc_down_is_refused_then_allowed_again_after_restart(
    gateway: str, tmp_path: Path
) -> None:
    stack = start_stack(gateway, tmp_path)
    try:
        assert stack.send("GET", "/api/x", approov()).status == 200
        stack.authsvc.stop()
        before = stack.backend_requests()
        assert (
            stack.send("POST", "/api/x", approov(), b"data").status
            == FRONT_DOORS[gateway].unavailable_status
        )
        assert stack.backend_requests() == before
        assert stack.send("GET", "/public/x").status == 200
        stack.authsvc.start()  # the same command: its ports and options
        assert stack.send("GET", "/api/x", approov()).status == 200
    finally:
        stack.stop()


def test_envoy_allows_with_authsvcs_default_allow_status(tmp_path: Path) -> None:
    """Envoy allows on 200 alone; authsvc, left at APPROOV_ALLOW_STATUS=204, must still answer
    200 to Envoy's checks (they carry the client's path), or valid requests get an empty 204."""
    gateway_available("envoy")
    stack = GatewayStack(GATEWAYS["envoy"], tmp_path)
    try:
        assert "APPROOV_ALLOW_STATUS" not in stack.authsvc.env
        reply = stack.send("GET", "/api/x", approov())
        assert (reply.status, reply.json()["path"]) == (200, "/api/x")
    finally:
        stack.stop()
