"""Envoy's gRPC ext_authz check (`Authorization/Check`), called on the servicer directly with the
CheckRequest Envoy 1.40 sends (its fields as seen with the real binary): the policy from the
route's `approov-route`, the answers, and message signing from the check's own attributes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import sys
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from google.rpc import code_pb2

from authsvc.http.extauthz import ROUTE_KEY, ExtAuthz
from authsvc.policy import BindingMode
from authsvc.store.replay import MemoryReplayStore
from tests.app.service import AUTHORIZATION, Service
from tests.support.signatures import Request, ipk_token, request, sign, signed_post
from tests.support.tokens import OTHER_SECRET, bound_token, pay_for, token

URL = "https://api.example.com/v1/shapes?colour=red"
Headers = list[tuple[str, str]]


def check_request(
    headers: Headers,
    *,
    method: str = "GET",
    path: str = "/v1/shapes?colour=red",
    host: str = "api.example.com",
    scheme: str = "https",
    route: str | None = None,
    raw_body: bytes = b"",
    text_body: str = "",
    joined: bool = False,
) -> Any:
    """The CheckRequest Envoy sends: `header_map` (encode_raw_headers), or with `joined` the
    older map, where copies of a header are joined by a comma."""
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method=method, path=path, host=host, scheme=scheme, raw_body=raw_body, body=text_body
    )
    pseudo = [(":authority", host), (":path", path), (":method", method), (":scheme", scheme)]
    if joined:
        merged: dict[str, str] = {}
        for name, value in [*pseudo, *headers]:
            key = name.lower()
            merged[key] = f"{merged[key]},{value}" if key in merged else value
        http.headers.update(merged)
    else:
        http.header_map.headers.extend(
            base_pb2.HeaderValue(key=name.lower(), raw_value=value.encode())
            for name, value in [*pseudo, *headers]
        )
    attributes = attribute_context_pb2.AttributeContext(
        request=attribute_context_pb2.AttributeContext.Request(http=http),
        context_extensions={} if route is None else {ROUTE_KEY: route},
    )
    return external_auth_pb2.CheckRequest(attributes=attributes)


class GrpcService(Service):
    """The app's check endpoint behind the gRPC servicer."""

    def __init__(self, **overrides: Any) -> None:
        super().__init__(**overrides)
        self.servicer = ExtAuthz(self.app.checks)

    def grpc(self, headers: Headers, **options: Any) -> Any:
        async def call() -> Any:
            response = await self.servicer.Check(check_request(headers, **options), None)
            self.app.checks.flush()
            return response

        return asyncio.run(call())


def upstream_headers(response: Any) -> dict[str, str]:
    """What an OK answer sets on the request to the backend, each set over any client copy."""
    headers = response.ok_response.headers
    overwrite = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    assert all(option.append_action == overwrite for option in headers)
    return {option.header.key: option.header.value for option in headers}


def denied_reason(response: Any) -> str:
    """The reason of a deny, asserting it is the 401 a client gets."""
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == 401
    headers: dict[str, str] = {
        h.header.key: h.header.value for h in response.denied_response.headers
    }
    assert list(headers) == ["x-approov-reason"]
    return headers["x-approov-reason"]


def reason_of(response: Any) -> str:
    """The reason of either answer."""
    if response.status.code == code_pb2.OK:
        return upstream_headers(response)["x-approov-reason"]
    return denied_reason(response)


def approov(tok: str, authorization: str | None = AUTHORIZATION) -> Headers:
    return [("Approov-Token", tok), *([("Authorization", authorization)] if authorization else [])]


def valid_token(**claims: Any) -> str:
    return bound_token(AUTHORIZATION.encode(), **claims)


# --- answers ---------------------------------------------------------------------------------


def test_an_allow_is_ok_setting_the_device_id_and_reason_over_any_client_copy() -> None:
    response = GrpcService().grpc(
        [*approov(valid_token(did="device-1")), ("X-Approov-Did", "forged")]
    )
    assert response.status.code == code_pb2.OK
    assert upstream_headers(response) == {"x-approov-did": "device-1", "x-approov-reason": "ok"}


def test_an_allow_without_a_device_id_still_sets_an_empty_one_over_a_client_copy() -> None:
    response = GrpcService().grpc([*approov(valid_token()), ("X-Approov-Did", "forged")])
    assert upstream_headers(response)["x-approov-did"] == ""


DENIALS = [
    ("no-token", [("Authorization", AUTHORIZATION)], "token_missing"),
    ("garbage", approov("not-a-token"), "token_malformed"),
    ("expired", approov(valid_token(exp=1_000_000)), "expired"),
    (
        "other-key",
        approov(bound_token(AUTHORIZATION.encode(), secret=OTHER_SECRET)),
        "signature_invalid",
    ),
    ("unbound", approov(valid_token(), authorization="Bearer other"), "binding_mismatch"),
    ("no-binding-header", approov(valid_token(), authorization=None), "binding_header_missing"),
]


@pytest.mark.parametrize(("case", "headers", "reason"), DENIALS, ids=[d[0] for d in DENIALS])
def test_a_deny_is_a_401_with_its_reason_never_a_grpc_error(
    case: str, headers: Headers, reason: str
) -> None:
    assert denied_reason(GrpcService().grpc(headers)) == reason


def test_a_check_without_any_http_attributes_is_a_deny_not_an_error() -> None:
    service = GrpcService()
    response = asyncio.run(service.servicer.Check(external_auth_pb2.CheckRequest(), None))
    assert denied_reason(response) == "token_missing"


@pytest.mark.internal_error
def test_a_bug_in_reading_the_check_is_a_deny_never_a_grpc_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(http: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr("authsvc.http.extauthz._headers", broken)
    assert denied_reason(GrpcService().grpc(approov(valid_token()))) == "internal_error"


def test_two_copies_of_the_token_are_refused_as_duplicated() -> None:
    """With `encode_raw_headers` Envoy sends every copy: the same rule as over HTTP."""
    tok = valid_token()
    headers = [*approov(tok), ("Approov-Token", tok)]
    assert denied_reason(GrpcService().grpc(headers)) == "token_duplicated"


def test_without_raw_headers_two_copies_joined_by_a_comma_are_never_a_token() -> None:
    tok = valid_token()
    headers = [*approov(tok), ("Approov-Token", tok)]
    assert denied_reason(GrpcService().grpc(headers, joined=True)) == "token_malformed"
    response = GrpcService().grpc(approov(tok), joined=True)
    assert upstream_headers(response)["x-approov-reason"] == "ok"


# --- the policy is the route's -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (None, "binding_missing"),  # absent: /auth, the default policy (required)
        ("/auth", "binding_missing"),
        ("/auth-binding-required", "binding_missing"),
        ("/auth-binding-off", "ok"),
        ("/auth-binding-if-present", "ok"),
    ],
)
def test_the_route_names_the_policy_and_none_means_auth(route: str | None, reason: str) -> None:
    """A token without `pay`, on each route."""
    response = GrpcService().grpc(approov(token()), route=route)
    assert reason_of(response) == reason


def test_the_clients_path_never_changes_the_policy() -> None:
    """The client's path is appended after the route's check path, never read as a policy."""
    response = GrpcService().grpc(approov(token()), path="/auth-binding-off/x", route="/auth")
    assert denied_reason(response) == "binding_missing"


@pytest.mark.parametrize("route", ["/authz", "auth", "", "/auth/x", "/auth-binding-never"])
def test_an_approov_route_outside_the_grammar_is_denied_as_route_unknown_and_logged_once(
    route: str, caplog: pytest.LogCaptureFixture
) -> None:
    service = GrpcService()
    with caplog.at_level(logging.WARNING, logger="authsvc.http.extauthz"):
        for _ in range(2):
            assert denied_reason(service.grpc(approov(valid_token()), route=route)) == (
                "route_unknown"
            )
    assert len([r for r in caplog.records if "route_unknown" in r.getMessage()]) == 1
    assert service.last_line()["reason"] == "route_unknown"


def test_a_monitored_route_allows_a_failure_as_monitor_with_an_empty_device_id() -> None:
    service = GrpcService()
    response = service.grpc(approov("not-a-token"), route="/auth-monitor")
    assert upstream_headers(response) == {
        "x-approov-did": "",
        "x-approov-reason": "token_malformed",
    }
    assert service.last_line()["decision"] == "monitor"


def test_the_decision_line_has_the_clients_method_and_target_not_a_clients_x_original_uri() -> None:
    service = GrpcService()
    service.grpc(
        [*approov(valid_token()), ("X-Original-URI", "/forged"), ("X-Original-Method", "GET")],
        method="DELETE",
        path="/v1/items/7?q=1",
    )
    line = service.last_line()
    assert (line["method"], line["uri"], line["decision"]) == ("DELETE", "/v1/items/7?q=1", "allow")


# --- message signing from the check's attributes ----------------------------------------------


def signing_service(**overrides: Any) -> GrpcService:
    return GrpcService(binding_mode=BindingMode.OFF, **overrides)


def as_checked(message: Request, **options: Any) -> Any:
    """`message` as Envoy hands it over: its method, path and query, authority and scheme."""
    scheme, _, rest = message.url.partition("://")
    host, slash, target = rest.partition("/")
    return {
        "method": message.method,
        "path": slash + target,
        "host": host,
        "scheme": scheme,
        "route": "/auth-signing-required",
        **options,
    }


def test_a_signed_get_is_allowed_from_the_checks_own_method_url_and_headers() -> None:
    message = sign(request(url=URL))
    response = signing_service().grpc(list(message.headers.items()), **as_checked(message))
    assert upstream_headers(response)["x-approov-reason"] == "ok"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"path": "/v1/shapes?colour=blue"}, "message_signature_mismatch"),
        ({"method": "DELETE"}, "message_signature_mismatch"),
        ({"host": "api.example.org"}, "message_signature_mismatch"),
        ({"scheme": "http"}, "message_signature_mismatch"),
    ],
)
def test_a_signed_request_checked_for_another_url_or_method_is_refused(
    change: dict[str, str], reason: str
) -> None:
    message = sign(request(url=URL))
    options = {**as_checked(message), **change}
    response = signing_service().grpc(list(message.headers.items()), **options)
    assert denied_reason(response) == reason


@pytest.mark.parametrize(
    "forged",
    [
        ("X-Original-Method", "DELETE"),
        ("X-Forwarded-Method", "DELETE"),
        ("X-Original-URI", "/v1/other"),
        ("X-Forwarded-Uri", "/v1/other"),
        ("X-Forwarded-Host", "api.example.org"),
    ],
)
def test_a_clients_x_original_header_that_disagrees_refuses_its_own_request(
    forged: tuple[str, str],
) -> None:
    message = sign(request(url=URL))
    headers = [*message.headers.items(), forged]
    response = signing_service().grpc(headers, **as_checked(message))
    assert denied_reason(response) == "message_target_unknown"


def test_a_clients_x_forwarded_proto_is_ignored_the_checks_scheme_is_the_urls() -> None:
    message = sign(request(url=URL.replace("https:", "http:")))
    headers = [*message.headers.items(), ("X-Forwarded-Proto", "https")]
    response = signing_service().grpc(headers, **as_checked(message))
    assert reason_of(response) == "ok"


BODY = b'{"amount": 1, "note": "caf\xc3\xa9"}'


def test_a_signed_post_is_allowed_with_its_body_sent_as_bytes() -> None:
    message = signed_post(BODY, url=URL)
    headers = list(message.headers.items())
    response = signing_service().grpc(headers, **as_checked(message, raw_body=BODY))
    assert upstream_headers(response)["x-approov-reason"] == "ok"


def test_a_signed_post_is_allowed_with_a_utf8_body_sent_as_text() -> None:
    """Envoy's per-route with_request_body sends the body as text, whatever pack_as_bytes says:
    a UTF-8 body is the same bytes."""
    message = signed_post(BODY, url=URL)
    headers = list(message.headers.items())
    response = signing_service().grpc(headers, **as_checked(message, text_body=BODY.decode()))
    assert upstream_headers(response)["x-approov-reason"] == "ok"


def test_a_body_changed_under_its_signed_digest_is_refused() -> None:
    message = signed_post(BODY, url=URL)
    changed = BODY.replace(b"1", b"9")
    assert hashlib.sha256(changed).digest() != hashlib.sha256(BODY).digest()
    headers = list(message.headers.items())
    response = signing_service().grpc(headers, **as_checked(message, raw_body=changed))
    assert denied_reason(response) == "content_digest_mismatch"


def test_a_single_use_signature_is_allowed_once_then_refused_as_replayed() -> None:
    service = signing_service(replay_store=MemoryReplayStore())
    message = sign(request(url=URL, token_value=ipk_token(pay=pay_for(b"x"))))
    headers = list(message.headers.items())
    options = as_checked(message, route="/auth-signing-single-use")
    assert upstream_headers(service.grpc(headers, **options))["x-approov-reason"] == "ok"
    assert denied_reason(service.grpc(headers, **options)) == "message_replayed"


def test_grpc_is_loaded_only_where_it_is_served() -> None:
    """grpcio costs a worker ~12 MB: an HTTP-only server never imports it."""
    code = "import sys, authsvc.cli, authsvc.http.server; print('grpc' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "False"
