"""Message signing over HTTP: the policy in the route, the request as each proxy describes it,
and the body a proxy forwards, called on the ASGI app directly (raw header bytes)."""

from __future__ import annotations

import time
from typing import Any

import pytest

import authsvc.http.app
from authsvc.http.app import MAX_FORWARDED_BODY_BYTES
from authsvc.policy import BindingMode, SigningMode
from tests.app.service import Service
from tests.support.signatures import Request, request, sign, signed_post
from tests.support.tokens import OTHER_SECRET, token

URL = "https://api.example.com/v1/shapes?colour=red"
# What the nginx include sends authsvc of the client's request.
NGINX_CONTEXT = [
    (b"x-original-method", b"GET"),
    (b"x-original-uri", b"/v1/shapes?colour=red"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"api.example.com"),
]


def signing_service(**overrides: Any) -> Service:
    """The app without token binding (the signing tests' tokens carry no `pay`)."""
    return Service(**{"binding_mode": BindingMode.OFF, **overrides})


def through_nginx(message: Request) -> list[tuple[bytes, bytes]]:
    return [*message.header_pairs(), *NGINX_CONTEXT]


@pytest.mark.parametrize(
    ("path", "default", "reason"),
    [
        ("/auth", SigningMode.OFF, "ok"),
        ("/auth", SigningMode.REQUIRED, "message_signature_missing"),
        ("/auth-signing-required", SigningMode.OFF, "message_signature_missing"),
        ("/auth-binding-off-signing-required", SigningMode.OFF, "message_signature_missing"),
        ("/auth-signing-off", SigningMode.REQUIRED, "ok"),
        ("/auth-binding-off-signing-off", SigningMode.REQUIRED, "ok"),
        ("/auth-signing-if-present", SigningMode.OFF, "message_signature_missing"),
    ],
)
def test_the_route_names_the_signing_policy_else_the_setting_applies(
    path: str, default: SigningMode, reason: str
) -> None:
    """An unsigned request whose token carries `ipk`, on each route."""
    service = signing_service(signing_mode=default)
    result = service.check(through_nginx(request(url=URL)), path=path)
    assert result.reason == reason


@pytest.mark.parametrize(
    "path",
    [
        "/auth-signing-required/../auth-signing-off",
        "/auth-signing-required/-signing-off",
        "/auth-binding-off-signing-required/%2e%2e/auth",
    ],
)
def test_a_client_path_after_the_policy_never_weakens_signing(path: str) -> None:
    result = signing_service().check(through_nginx(request(url=URL)), path=path)
    assert result.reason == "message_signature_missing"


def test_a_signed_request_through_nginx_is_allowed_and_logged_with_its_policy() -> None:
    service = signing_service()
    result = service.check(through_nginx(sign(request(url=URL))), path="/auth-signing-required")
    assert (result.status, result.reason) == (204, "ok")
    line = service.last_line()
    assert (line["signing"], line["reason"], line["uri"]) == (
        "required",
        "ok",
        "/v1/shapes?colour=red",
    )


def test_a_refused_signature_is_counted_under_its_reason() -> None:
    service = signing_service()
    service.check(through_nginx(request(url=URL)), path="/auth-signing-required")
    exposition = service.metrics.exposition().decode()
    assert 'reason="message_signature_missing"' in exposition


def test_without_the_proxys_url_headers_every_signed_request_is_denied() -> None:
    """A proxy configured without them: denied as message_target_unknown, also in monitor
    mode, so the operator sees the configuration problem at once."""
    service = signing_service(abort_on_invalid_signature=False)
    result = service.check(sign(request(url=URL)).header_pairs(), path="/auth-signing-required")
    assert (result.status, result.reason) == (401, "message_target_unknown")


# What a forward-auth proxy (Traefik forwardAuth, Caddy forward_auth) sends of a client's
# `DELETE https://api.example.com/v1/shapes?colour=red`: its own X-Forwarded-*, and every header
# the client sent besides.
FORWARD_AUTH_CONTEXT = [
    (b"x-forwarded-method", b"DELETE"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"api.example.com"),
    (b"x-forwarded-uri", b"/v1/shapes?colour=red"),
]


@pytest.mark.parametrize(
    ("signed_method", "signed_url", "forged"),
    [
        ("DELETE", "https://api.example.com/other", (b"x-original-uri", b"/other")),
        ("DELETE", "http://evil/other", (b"x-original-url", b"http://evil/other")),
        ("GET", URL, (b"x-original-method", b"GET")),
    ],
    ids=["x-original-uri", "x-original-url", "x-original-method"],
)
def test_behind_forward_auth_no_client_header_chooses_what_the_signature_is_checked_against(
    signed_method: str, signed_url: str, forged: tuple[bytes, bytes]
) -> None:
    """The client's X-Original-* disagree with the proxy's X-Forwarded-*: the request is
    unknown, denied also in monitor mode, and the honest one is allowed."""
    service = signing_service(abort_on_invalid_signature=False)
    replayed = sign(request(signed_method, signed_url))
    headers = [*replayed.header_pairs(), *FORWARD_AUTH_CONTEXT, forged]
    result = service.check(headers, path="/auth-signing-required")
    assert (result.status, result.reason) == (401, "message_target_unknown")
    assert service.last_line()["decision"] == "deny"
    honest = [*sign(request("DELETE", URL)).header_pairs(), *FORWARD_AUTH_CONTEXT]
    assert service.check(honest, path="/auth-signing-required").status == 204


@pytest.mark.parametrize(
    ("scheme", "authority", "signed_url", "reason"),
    [
        (b"https", b"api.example.com:443", "https://api.example.com/v1", "ok"),
        (b"http", b"api.example.com:80", "http://api.example.com/v1", "ok"),
        (b"https", b"API.example.COM", "https://api.example.com/v1", "ok"),
        (b"https", b"api.example.com", "https://api.example.com/v1", "ok"),
        (b"https", b"api.example.com:8443", "https://api.example.com:8443/v1", "ok"),
        (
            b"https",
            b"api.example.com:8443",
            "https://api.example.com/v1",
            "message_signature_mismatch",
        ),
        (
            b"https",
            b"api.example.com",
            "https://api.example.com:443/v1",
            "message_signature_mismatch",
        ),
    ],
    ids=[
        "443-sent-normalised-signed",
        "80-sent-normalised-signed",
        "upper-case-host-sent",
        "normalised-both",
        "other-port-kept",
        "other-port-not-dropped",
        "default-port-signed-is-not-the-normal-form",
    ],
)
def test_the_target_uri_is_rebuilt_normalised_as_the_sdks_sign_it(
    scheme: bytes, authority: bytes, signed_url: str, reason: str
) -> None:
    """Lower-case scheme and host, no default port (RFC 3986 6.2.3): a proxy or client that
    sends `:authority api.example.com:443` is checked against `https://api.example.com/...`."""
    context = [
        (b"x-original-method", b"GET"),
        (b"x-original-uri", b"/v1"),
        (b"x-forwarded-proto", scheme),
        (b"x-forwarded-host", authority),
    ]
    headers = [*sign(request(url=signed_url)).header_pairs(), *context]
    assert signing_service().check(headers, path="/auth-signing-required").reason == reason


def test_the_public_base_url_setting_replaces_the_proxys_scheme() -> None:
    """TLS ended at a load balancer: nginx saw http, the app signed https."""
    context = [(n, b"http" if n == b"x-forwarded-proto" else v) for n, v in NGINX_CONTEXT]
    headers = [*sign(request(url=URL)).header_pairs(), *context]
    assert signing_service().check(headers, path="/auth-signing-required").reason == (
        "message_signature_mismatch"
    )
    service = signing_service(public_base_url="https://api.example.com")
    assert service.check(headers, path="/auth-signing-required").reason == "ok"


# --- Envoy: method and raw path in the check itself, the body forwarded ------------------------


def through_envoy(message: Request) -> dict[str, Any]:
    """The check Envoy sends: the client's method, `path_prefix` + its raw path, its query, the
    authority as Host, and the whole body (`with_request_body`)."""
    body = message.body or b""
    headers = [
        (b"host", b"api.example.com"),
        (b"x-forwarded-proto", b"https"),
        (b"x-envoy-expected-rq-timeout-ms", b"2000"),
        *((name, value) for name, value in message.header_pairs() if name != b"content-length"),
        (b"content-length", str(len(body)).encode()),
    ]
    path, _, query = message.url.removeprefix("https://api.example.com").partition("?")
    return {
        "headers": headers,
        "method": message.method,
        "path": "/auth-signing-required" + path,
        "query": query.encode(),
        "body": body,
    }


def test_envoy_a_signed_post_with_its_whole_body_is_allowed_with_200() -> None:
    check = through_envoy(signed_post(b'{"shape": "circle"}'))
    result = signing_service().check(check.pop("headers"), **check)
    assert (result.status, result.reason) == (200, "ok")


def test_envoy_a_body_changed_under_its_signed_digest_is_refused() -> None:
    message = signed_post(b'{"amount": 1}')
    message.body = b'{"amount": 9}'
    check = through_envoy(message)
    result = signing_service().check(check.pop("headers"), **check)
    assert (result.status, result.reason) == (401, "content_digest_mismatch")


def test_envoy_a_body_in_several_chunks_is_read_whole() -> None:
    message = signed_post(b"x" * 10_000)
    check = through_envoy(message)
    body = check.pop("body")
    chunks = [body[:3000], body[3000:9000], body[9000:]]
    result = signing_service().check(check.pop("headers"), body_chunks=chunks, **check)
    assert result.reason == "ok"


def test_a_body_beyond_the_limit_is_cut_and_fails_its_digest() -> None:
    """authsvc reads at most MAX_FORWARDED_BODY_BYTES (the shipped Envoy limit): a longer one
    cannot be checked, so its digest fails rather than the rest passing unread."""
    message = signed_post(b"y" * (MAX_FORWARDED_BODY_BYTES + 1))
    check = through_envoy(message)
    result = signing_service().check(check.pop("headers"), **check)
    assert result.reason == "content_digest_mismatch"


def test_a_body_that_stops_coming_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy that announced a body and stalled: the check answers, a deny, in bounded time."""
    monkeypatch.setattr(authsvc.http.app, "_BODY_TIMEOUT_SECONDS", 0.2)
    message = signed_post(b"z" * 100)
    check = through_envoy(message)
    body = check.pop("body")
    result = signing_service().check(
        check.pop("headers"), body_chunks=[body[:10]], body_stalls=True, timeout=2, **check
    )
    assert (result.status, result.reason) == (401, "content_digest_mismatch")


@pytest.mark.parametrize("token_case", ["expired", "forged"])
def test_a_failed_token_is_answered_at_once_without_waiting_for_the_body(token_case: str) -> None:
    """On a signing route the client's request and its body are read only once a signature is
    due: a token that failed is refused at once, however long the body would take."""
    message = signed_post(b"z" * 100)
    check = through_envoy(message)
    check.pop("body")
    failed = (
        token(exp=int(time.time()) - 60) if token_case == "expired" else token(secret=OTHER_SECRET)
    )
    headers = [
        (name, failed.encode() if name == b"approov-token" else value)
        for name, value in check.pop("headers")
    ]
    started = time.monotonic()
    result = signing_service().check(
        headers, body_chunks=[b"z"], body_stalls=True, timeout=1, **check
    )
    assert (result.status, result.reason) == (
        401,
        "expired" if token_case == "expired" else "signature_invalid",
    )
    assert time.monotonic() - started < 0.5  # the body timeout is 2 s


def test_a_check_without_signing_never_reads_the_body() -> None:
    """The body is read only on a signing route: elsewhere a stalled body changes nothing."""
    check = through_envoy(signed_post(b"z" * 100))
    check["path"] = check["path"].replace("/auth-signing-required", "/auth-signing-off")
    result = signing_service().check(
        check.pop("headers"), body_chunks=[b"z"], body_stalls=True, timeout=1, **check
    )
    assert result.reason == "ok"


def test_an_unsigned_token_without_ipk_passes_if_present_routes() -> None:
    headers = [(b"approov-token", token().encode()), *NGINX_CONTEXT]
    assert signing_service().check(headers, path="/auth-signing-if-present").reason == "ok"


@pytest.mark.parametrize("path", ["/auth-signing-required", "/auth-signing-if-present"])
def test_an_allow_on_a_signing_route_is_never_cacheable(path: str) -> None:
    """A proxy's cache keys on the token, not the signature: it must not keep this answer."""
    result = signing_service().check(through_nginx(sign(request(url=URL))), path=path)
    assert (result.reason, result.headers["cache-control"]) == ("ok", "no-store")
    assert "vary" not in result.headers


def test_a_monitored_signing_route_allows_a_refused_signature_as_monitor() -> None:
    service = signing_service()
    result = service.check(through_nginx(request(url=URL)), path="/auth-signing-required-monitor")
    assert (result.status, result.reason) == (204, "message_signature_missing")
    assert service.last_line()["decision"] == "monitor"


def test_on_a_monitored_route_an_unknown_client_request_stays_denied() -> None:
    """message_target_unknown means a forgery or a proxy misconfigured: never let through."""
    service = signing_service()
    headers = sign(request(url=URL)).header_pairs()
    result = service.check(headers, path="/auth-signing-required-monitor")
    assert (result.status, result.reason) == (401, "message_target_unknown")
    assert service.last_line()["decision"] == "deny"
