"""The HTTP contract of /auth, /healthz and /readyz, through Falcon's TestClient."""

from __future__ import annotations

import dataclasses
import io
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import falcon.testing
import pytest

from authsvc.check.credentials import Credentials
from authsvc.check.verify import Verdict, Verifier
from authsvc.config import Settings
from authsvc.http.app import create_app
from authsvc.http.endpoint import CheckEndpoint
from authsvc.observe.decisionlog import DecisionLog
from authsvc.observe.metrics import Metrics
from authsvc.policy import BindingMode
from authsvc.runtime import Runtime
from tests.app.service import AUTHORIZATION, Service
from tests.support.tokens import (
    DUMMY_SECRET,
    DUMMY_SECRET_B64,
    HS256_HEADER,
    OTHER_SECRET,
    bound_token,
    key_source,
    secret_keys,
    secret_verifier,
    sign,
    token,
)

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "FOO"]


VALID = "<a valid token, minted when the test runs>"
"""In a parametrize table: a token minted at collection could expire before the test runs."""


def valid() -> str:
    return bound_token(AUTHORIZATION.encode(), did="device-1")


# --- allow and deny, every method ------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_valid_token_is_allowed_with_204_and_empty_body_for_every_method(
    service: Service, method: str
) -> None:
    result = service.auth(valid(), method=method)
    assert (result.status_code, result.content) == (204, b"")
    assert result.headers["X-Approov-Reason"] == "ok"


@pytest.mark.parametrize("method", METHODS)
def test_invalid_token_is_denied_with_401_and_empty_body_for_every_method(
    service: Service, method: str
) -> None:
    result = service.auth(bound_token(AUTHORIZATION.encode(), secret=OTHER_SECRET), method=method)
    assert (result.status_code, result.content) == (401, b"")
    assert result.headers["X-Approov-Reason"] == "signature_invalid"
    assert "Content-Type" not in result.headers


def test_allow_status_200_when_configured() -> None:
    result = Service(allow_status=200).auth(valid())
    assert (result.status_code, result.content) == (200, b"")


def test_body_is_ignored() -> None:
    result = Service().client.simulate_post(
        "/auth",
        headers={"Approov-Token": valid(), "Authorization": AUTHORIZATION},
        body=b"x" * 5000,
    )
    assert result.status_code == 204


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "token_missing"),
        ({"Approov-Token": ""}, "token_missing"),
        ({"Approov-Token": "not.a.token"}, "token_malformed"),
        ({"Approov-Token": "x" * 5000}, "token_too_long"),
    ],
)
def test_deny_names_its_reason(service: Service, headers: dict[str, str], reason: str) -> None:
    result = service.client.simulate_get("/auth", headers=headers)
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (401, reason)


def test_token_header_sent_twice_is_denied(service: Service) -> None:
    result = service.client.simulate_get(
        "/auth",
        headers=[
            ("Approov-Token", valid()),
            ("Approov-Token", valid()),
            ("Authorization", AUTHORIZATION),
        ],
    )
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (401, "token_duplicated")


def test_binding_header_sent_twice_with_different_values_is_denied(service: Service) -> None:
    result = service.client.simulate_get(
        "/auth",
        headers=[
            ("Approov-Token", valid()),
            ("Authorization", AUTHORIZATION),
            ("Authorization", "Bearer other"),
        ],
    )
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (
        401,
        "binding_header_duplicated",
    )
    assert (service.lines()[-1]["decision"], result.headers["Cache-Control"]) == (
        "deny",
        "no-store",
    )


def test_configured_header_names_are_used() -> None:
    service = Service(token_header="X-Att", binding_headers=("X-Session",))
    result = service.client.simulate_get(
        "/auth", headers={"X-Att": bound_token(b"s1"), "X-Session": "s1"}
    )
    assert result.status_code == 204


# --- caching headers for a proxy cache in front ------------------------------------------------


def test_allow_is_cacheable_until_exp_and_varies_on_token_and_binding(service: Service) -> None:
    result = service.auth(bound_token(AUTHORIZATION.encode(), ttl=120))
    max_age = int(result.headers["Cache-Control"].removeprefix("max-age="))
    assert 115 <= max_age <= 120
    assert result.headers["Vary"] == "Approov-Token, Authorization"


def test_allow_never_says_a_negative_max_age() -> None:
    late = 2_000_000_000.0
    service = Service()
    runtime = dataclasses.replace(
        Runtime.from_settings(service.settings), verifier=secret_verifier()
    )
    app = create_app(runtime, clock=lambda: late)
    result = falcon.testing.TestClient(app).simulate_get(
        "/auth", headers={"Approov-Token": valid(), "Authorization": AUTHORIZATION}
    )
    assert result.headers["Cache-Control"] == "max-age=0"


def test_deny_is_never_cached(service: Service) -> None:
    assert service.auth(None).headers["Cache-Control"] == "no-store"


# --- forwarded claims ------------------------------------------------------------------------


def test_allow_forwards_the_device_id_but_never_the_token(service: Service) -> None:
    tok = valid()
    result = service.auth(tok)
    assert result.headers["X-Approov-Did"] == "device-1"
    assert all(tok not in value for value in result.headers.values())


@pytest.mark.parametrize("did", ["with space", "line\nbreak", "", "x" * 300, 42])
def test_device_id_that_is_not_a_safe_header_value_is_not_forwarded(
    service: Service, did: Any
) -> None:
    """The header is still sent, empty, so a proxy replaces any client-sent copy."""
    result = service.auth(bound_token(AUTHORIZATION.encode(), did=did))
    assert result.status_code == 204
    assert result.headers["X-Approov-Did"] == ""


def test_allow_for_a_token_without_device_id_sends_an_empty_one(service: Service) -> None:
    assert service.auth(bound_token(AUTHORIZATION.encode())).headers["X-Approov-Did"] == ""


# --- per-location policy, chosen by nginx through the path -------------------------------------


def test_binding_off_path_allows_a_token_without_binding_header(service: Service) -> None:
    assert service.auth(token(), authorization=None, path="/auth-binding-off").status_code == 204


def test_binding_required_path_denies_a_token_without_pay_whatever_the_default() -> None:
    service = Service(binding_mode=BindingMode.OFF)
    assert service.auth(token()).status_code == 204
    result = service.auth(token(), path="/auth-binding-required")
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (401, "binding_missing")


def test_binding_if_present_path_allows_a_token_without_pay(service: Service) -> None:
    assert service.auth(token(), path="/auth-binding-if-present").status_code == 204


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Original-URI": "/auth-binding-off"},
        {"X-Approov-Policy": "off"},
        {"X-Forwarded-Prefix": "/auth-binding-off"},
        {"X-Original-URL": "http://x/auth-binding-off"},
    ],
)
def test_client_headers_cannot_weaken_the_policy(service: Service, headers: dict[str, str]) -> None:
    result = service.auth(token(), headers=headers)
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (401, "binding_missing")


@pytest.mark.parametrize(
    "path",
    [
        "/auth/binding-off",
        "/auth/auth-binding-off",
        "/auth/../auth-binding-off",
        "/auth/%2e%2e/auth-binding-off",
        "/auth/%2Fauth-binding-off",
        "/auth//auth-binding-off",
        "/auth/binding-off?policy=off",
    ],
)
def test_client_path_after_auth_never_changes_the_default_policy(
    service: Service, path: str
) -> None:
    """What a proxy appends after `/auth` (Envoy: the client's path) is the client's to choose."""
    result = service.auth(token(), path=path)
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (401, "binding_missing")


@pytest.mark.parametrize(
    "path",
    [
        "/auth-binding-required/binding-off",
        "/auth-binding-required/auth-binding-off",
        "/auth-binding-required/../auth-binding-off",
        "/auth-binding-required/%2e%2e/auth-binding-off/x",
        "/auth-binding-required-signing-off/../auth-binding-off",
        "/auth-binding-required/-signing-off",
    ],
)
def test_client_path_after_a_pinned_policy_never_changes_it(path: str) -> None:
    service = Service(binding_mode=BindingMode.OFF)
    result = service.auth(token(), path=path)
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (401, "binding_missing")


@pytest.mark.parametrize("path", ["/auth-binding-off/", "/auth-binding-off/api/v1/x"])
def test_pinned_policy_holds_with_any_client_path_after_it(service: Service, path: str) -> None:
    result = service.auth(token(), authorization=None, path=path)
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (200, "ok")


@pytest.mark.parametrize("path", ["/auth/", "/auth/api/v1/x", "/auth-binding-required/x"])
def test_check_with_a_client_path_is_allowed_with_200_whatever_the_allow_status(
    path: str,
) -> None:
    """Only Envoy-style proxies append the client's path, and they allow on 200 alone."""
    service = Service(allow_status=204)
    assert service.auth(valid(), path=path).status_code == 200
    assert service.auth(valid(), path="/auth").status_code == 204


def test_envoy_check_without_a_client_path_is_allowed_with_200() -> None:
    """Envoy Gateway's pathOverride (or Istio without pathPrefix) sends a bare policy path."""
    service = Service(allow_status=204)
    envoy = {"x-envoy-expected-rq-timeout-ms": "2000", "x-envoy-internal": "true"}
    result = service.auth(valid(), path="/auth-binding-required", headers=envoy)
    assert result.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/authz",
        "/auth-binding-none",
        "/auth-binding-",
        "/auth-binding-offx",
        "/auth-binding-off-x",
        "/auth-binding",
        "/binding-off",
        "/auth-signing-",
        "/auth-signing-on",
        "/auth-signing",
        "/auth-signing-required-binding-off",  # the binding is named first
        "/auth-binding-off-signing",
        "/auth-signing-off-x",
        "/auth-monitorx",
        "/auth-monitor-",
        "/auth-monitor-binding-off",  # -monitor comes last
        "/auth-binding-off-monitor-signing-off",
        "/auth-monitor-monitor",
        "/",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "PROPFIND"])
def test_unknown_paths_are_not_found(service: Service, path: str, method: str) -> None:
    assert service.auth(valid(), path=path, method=method).status_code == 404


# --- monitor mode ------------------------------------------------------------------------------


def test_monitor_mode_allows_an_invalid_token_and_says_why() -> None:
    service = Service(abort_on_invalid_token=False)
    result = service.auth(bound_token(AUTHORIZATION.encode(), secret=OTHER_SECRET, did="d"))
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (204, "signature_invalid")
    assert result.headers["Cache-Control"] == "no-store"
    assert result.headers["X-Approov-Did"] == ""  # nothing trusted: the claim is not forwarded
    assert service.lines()[-1]["decision"] == "monitor"


def test_binding_monitor_mode_allows_a_binding_mismatch_but_not_an_expired_token() -> None:
    service = Service(abort_on_invalid_binding=False)
    assert service.auth(valid(), authorization="Bearer other").status_code == 204
    assert service.auth(bound_token(AUTHORIZATION.encode(), ttl=-10)).status_code == 401


# --- monitor per route: `-monitor`, chosen by the proxy ------------------------------------------

MONITORED_ROUTES = [
    "/auth-monitor",
    "/auth-binding-required-monitor",
    "/auth-signing-off-monitor",
    "/auth-binding-required-signing-off-monitor",
    "/auth-monitor/api/v1/x",  # Envoy: the client's path after the policy
]


@pytest.mark.parametrize("path", MONITORED_ROUTES)
def test_a_monitored_route_allows_a_failure_as_monitor_whatever_the_global_flags(
    path: str,
) -> None:
    """The abort settings say deny; the route says monitor: allowed, with the reason."""
    service = Service(abort_on_invalid_token=True, abort_on_invalid_binding=True)
    forged = bound_token(AUTHORIZATION.encode(), secret=OTHER_SECRET, did="d")
    result = service.auth(forged, path=path)
    assert result.status_code in (200, 204)
    assert result.headers["X-Approov-Reason"] == "signature_invalid"
    line = service.lines()[-1]
    assert (line["decision"], line["reason"], line["monitor"]) == (
        "monitor",
        "signature_invalid",
        True,
    )


def test_elsewhere_the_global_flags_keep_their_meaning() -> None:
    service = Service()
    forged = bound_token(AUTHORIZATION.encode(), secret=OTHER_SECRET)
    assert service.auth(forged, path="/auth-monitor").status_code == 204
    assert service.auth(forged, path="/auth").status_code == 401
    assert "monitor" not in service.lines()[-1]


def test_a_monitored_allow_with_verified_claims_is_never_cacheable_and_has_no_device_id() -> None:
    """A binding mismatch on a monitored route: the token verified (claims, a device id), but
    nothing of it may be cached by the proxy or forwarded to the backend."""
    service = Service()
    tok = bound_token(AUTHORIZATION.encode(), did="device-7")
    result = service.auth(tok, authorization="Bearer someone else", path="/auth-monitor")
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (204, "binding_mismatch")
    assert result.headers["Cache-Control"] == "no-store"
    assert result.headers["X-Approov-Did"] == ""
    assert "Vary" not in result.headers
    line = service.lines()[-1]
    assert (line["decision"], line["did"]) == ("monitor", "device-7")  # logged, not forwarded


def test_a_valid_token_on_a_monitored_route_is_a_plain_allow() -> None:
    service = Service()
    result = service.auth(bound_token(AUTHORIZATION.encode(), did="device-7"), path="/auth-monitor")
    assert result.status_code == 204
    assert result.headers["Cache-Control"].startswith("max-age=")
    assert result.headers["X-Approov-Did"] == "device-7"
    assert service.lines()[-1]["decision"] == "allow"


def test_a_monitored_failure_is_counted_as_monitor_with_its_reason() -> None:
    metrics = Metrics()
    runtime = Runtime.from_settings(Settings(secret=DUMMY_SECRET))
    client = falcon.testing.TestClient(create_app(runtime, metrics=metrics))
    client.simulate_get("/auth-monitor", headers={"Authorization": AUTHORIZATION})
    exposition = metrics.exposition().decode()
    assert 'authsvc_decisions_total{decision="monitor",reason="token_missing"} 1.0' in exposition


@pytest.mark.parametrize(
    "path",
    [
        "/auth/-monitor",
        "/auth/auth-monitor",
        "/auth/../auth-monitor",
        "/auth/%2e%2e/auth-monitor",
        "/auth/%2Fauth-monitor",
        "/auth-binding-required/-monitor",
        "/auth-binding-required/x-monitor",
        "/auth-binding-required/../auth-binding-required-monitor",
        "/auth-binding-required/%2e%2e/auth-monitor/x",
    ],
)
def test_a_client_path_never_makes_a_route_monitored(path: str) -> None:
    """`-monitor` ends the policy name the proxy chose; what a proxy appends after a slash is
    the client's, and never lets a failure through."""
    service = Service(binding_mode=BindingMode.OFF)
    forged = bound_token(AUTHORIZATION.encode(), secret=OTHER_SECRET)
    result = service.auth(forged, path=path)
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (401, "signature_invalid")


@pytest.mark.parametrize(
    "headers",
    [{"X-Original-URI": "/auth-monitor"}, {"X-Approov-Monitor": "true"}],
)
def test_client_headers_cannot_make_a_route_monitored(headers: dict[str, str]) -> None:
    forged = bound_token(AUTHORIZATION.encode(), secret=OTHER_SECRET)
    assert Service().auth(forged, headers=headers).status_code == 401


# --- robustness -------------------------------------------------------------------------------


class ExplodingVerifier(Verifier):
    def check(self, credentials: Credentials, binding_mode: BindingMode) -> Verdict:
        raise ZeroDivisionError(credentials.tokens[0].decode())


@pytest.mark.internal_error
def test_unexpected_error_in_verification_is_a_logged_deny_not_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = Service(verifier=ExplodingVerifier(secret_keys()))
    tok = valid()
    result = service.auth(tok)
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (401, "internal_error")
    (line,) = service.lines()
    assert line["error"] == "ZeroDivisionError"
    assert tok not in service.log.getvalue()
    # The error log says what and where, never the exception's message (here: the token).
    assert "ZeroDivisionError at " in caplog.text
    assert tok[:20] not in caplog.text


class ExplodingLog(DecisionLog):
    def record(self, verdict: Verdict, **fields: Any) -> None:
        raise OverflowError("a claim value the log could not format")


@pytest.mark.internal_error
@pytest.mark.parametrize(
    ("tok", "expected"),
    [(VALID, (204, "ok")), (None, (401, "token_missing")), ("x", (401, "token_malformed"))],
)
def test_nothing_after_the_verdict_changes_the_answer(
    tok: str | None, expected: tuple[int, str], caplog: pytest.LogCaptureFixture
) -> None:
    tok = valid() if tok is VALID else tok
    settings = Settings(secret=DUMMY_SECRET)
    client = falcon.testing.TestClient(
        create_app(Runtime.from_settings(settings), decision_log=ExplodingLog())
    )
    headers = {"Authorization": AUTHORIZATION, **({"Approov-Token": tok} if tok else {})}
    result = client.simulate_get("/auth", headers=headers)
    assert (result.status_code, result.headers["X-Approov-Reason"]) == expected
    assert "answered but not recorded: OverflowError at " in caplog.text


@pytest.mark.internal_error
@pytest.mark.parametrize(("tok", "status"), [(VALID, 204), ("x", 401)])
def test_a_failure_building_the_response_headers_keeps_the_verdicts_status(
    tok: str, status: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tok = valid() if tok is VALID else tok

    def broken(*args: object) -> bytes:
        raise UnicodeEncodeError("ascii", "", 0, 1, "a value no header can carry")

    monkeypatch.setattr(CheckEndpoint, "_verdict_head", broken)
    assert Service().auth(tok).status_code == status
    assert "answered without its headers: UnicodeEncodeError at " in caplog.text


@pytest.mark.parametrize("exp", [10**400, -(10**400), 10**300 + 0.5])
def test_a_token_with_an_exp_no_date_can_hold_is_claims_invalid_and_logged(
    service: Service, exp: float
) -> None:
    """Found by a hostile-input sweep: a 400-digit exp made the decision log raise (500)."""
    tok = sign(HS256_HEADER, json.dumps({"exp": exp, "did": "d"}).encode())
    result = service.auth(tok)
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (401, "claims_invalid")
    (line,) = service.lines()
    assert (line["reason"], "exp" in line) == ("claims_invalid", False)


@pytest.mark.parametrize(
    "value",
    ["\u00e9\u00ff", "a\tb", "Bearer " + "\u00ff" * 3, "x" * 20_000, "\u0080"],
)
def test_unusual_header_bytes_get_401_not_an_error(service: Service, value: str) -> None:
    for name in ("Approov-Token", "Authorization", "X-Original-URI", "X-Request-ID"):
        result = service.client.simulate_get("/auth", headers={name: value})
        assert result.status_code == 401


# --- health ----------------------------------------------------------------------------------


def test_healthz_answers_200_without_touching_the_verifier() -> None:
    service = Service(verifier=ExplodingVerifier(secret_keys()))
    assert service.client.simulate_get("/healthz").status_code == 200
    assert service.client.simulate_head("/healthz").status_code == 200


def test_readyz_is_200_once_a_key_is_loaded(service: Service) -> None:
    assert service.client.simulate_get("/readyz").status_code == 200


def test_readyz_is_503_without_a_key() -> None:
    assert (
        Service(verifier=Verifier(key_source())).client.simulate_get("/readyz").status_code == 503
    )


# --- the decision log -------------------------------------------------------------------------


def test_each_decision_is_one_json_line_with_the_nginx_context(service: Service) -> None:
    tok = valid()
    service.auth(
        tok,
        method="POST",
        headers={
            "X-Original-Method": "PUT",
            "X-Original-URI": "/api/items?id=1",
            "X-Request-ID": "r-1",
        },
    )
    service.auth(None, path="/auth-binding-off")
    allow, deny = service.lines()
    assert {
        k: allow[k] for k in ("decision", "reason", "binding", "method", "uri", "request_id", "did")
    } == {
        "decision": "allow",
        "reason": "ok",
        "binding": "required",
        "method": "PUT",
        "uri": "/api/items?id=1",
        "request_id": "r-1",
        "did": "device-1",
    }
    assert isinstance(allow["exp"], int)
    assert allow["latency_ms"] >= 0
    # UTC, as the line says: a local-time reading could never fail west of UTC.
    logged = datetime.fromisoformat(allow["time"])
    assert logged.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - logged) < timedelta(seconds=5)
    assert (deny["decision"], deny["reason"], deny["binding"], deny["method"], deny["uri"]) == (
        "deny",
        "token_missing",
        "off",
        "GET",
        "/auth-binding-off",
    )


def test_ingress_style_original_url_is_logged(service: Service) -> None:
    service.auth(None, headers={"X-Original-URL": "https://api.example.com/v1/x"})
    assert service.lines()[0]["uri"] == "https://api.example.com/v1/x"


def test_caddy_and_traefik_style_forwarded_method_and_uri_are_logged(service: Service) -> None:
    service.auth(None, headers={"X-Forwarded-Method": "PATCH", "X-Forwarded-Uri": "/v1/x?a=%20"})
    assert (service.lines()[0]["method"], service.lines()[0]["uri"]) == ("PATCH", "/v1/x?a=%20")


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/auth/api/v1/x%2Fy?a=1&b=%20", "/api/v1/x%2Fy?a=1&b=%20"),
        ("/auth-binding-off/login", "/login"),
        ("/auth/", "/"),
        ("/auth%2Fapi", "/auth%2Fapi"),
    ],
)
def test_envoy_style_check_logs_its_own_method_and_the_raw_client_path(
    service: Service, path: str, logged: str
) -> None:
    service.auth(None, method="DELETE", path=path)
    assert (service.lines()[0]["method"], service.lines()[0]["uri"]) == ("DELETE", logged)


def test_log_never_holds_the_token_the_secret_or_the_authorization_value(
    service: Service,
) -> None:
    secret_authorization = "Bearer very-secret-session"
    tok = bound_token(secret_authorization.encode())
    service.auth(tok, authorization=secret_authorization)
    service.auth(tok, authorization="Bearer wrong")
    text = service.log.getvalue()
    assert len(service.lines()) == 2
    for secret in (
        tok,
        tok.split(".")[1],
        tok.split(".")[2],
        DUMMY_SECRET_B64,
        "very-secret-session",
    ):
        assert secret not in text


def test_logging_disabled_writes_nothing() -> None:
    service = Service(logging_enabled=False)
    service.auth(valid())
    service.auth(None)
    assert service.log.getvalue() == ""


# --- metrics, request id, lifecycle -------------------------------------------------------------


def metric_lines(service: Service) -> list[str]:
    result = service.client.simulate_get("/metrics")
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return [line for line in result.text.splitlines() if not line.startswith("#")]


def test_metrics_count_decisions_by_decision_and_reason(service: Service) -> None:
    for _ in range(3):
        service.auth(valid())
    service.auth(None)
    lines = metric_lines(service)
    assert 'authsvc_decisions_total{decision="allow",reason="ok"} 3.0' in lines
    assert 'authsvc_decisions_total{decision="deny",reason="token_missing"} 1.0' in lines
    assert "authsvc_check_seconds_count 4.0" in lines
    # Three of one token: a miss, then hits; the check without one never looked in the cache.
    assert 'authsvc_cache_lookups_total{result="hit"} 2.0' in lines
    assert 'authsvc_cache_lookups_total{result="miss"} 1.0' in lines


def test_with_the_cache_off_no_cache_lookup_is_counted() -> None:
    service = Service(verified_cache_size=0)
    service.auth(valid())
    assert not [line for line in metric_lines(service) if "authsvc_cache_lookups" in line]


def test_metric_labels_never_hold_a_token_a_device_id_or_a_path(service: Service) -> None:
    tok = valid()
    service.auth(tok, path="/auth-binding-off", headers={"X-Original-URI": "/secret/path"})
    text = "\n".join(metric_lines(service))
    for leaked in (tok[:20], "device-1", "/secret/path", "binding-off"):
        assert leaked not in text


def test_metrics_report_the_keys_and_the_build(service: Service) -> None:
    lines = metric_lines(service)
    assert "authsvc_keys 1.0" in lines
    assert "authsvc_keys_last_load_success 1.0" in lines
    assert any(line.startswith('authsvc_build_info{algorithms="HS256",version="') for line in lines)
    loaded = next(line for line in lines if line.startswith("authsvc_keys_loaded_timestamp"))
    assert time.time() - 60 < float(loaded.split()[1]) <= time.time()


def test_request_id_is_echoed(service: Service) -> None:
    assert service.auth(None, headers={"X-Request-ID": "r-42"}).headers["X-Request-ID"] == "r-42"
    assert "X-Request-ID" not in service.auth(None, headers={"X-Request-ID": "a b"}).headers


def test_readyz_turns_503_once_the_worker_is_stopping() -> None:
    stopping = False
    settings = Settings(secret=DUMMY_SECRET)
    app = create_app(
        Runtime.from_settings(settings),
        decision_log=DecisionLog(io.StringIO()),
        is_stopping=lambda: stopping,
    )
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/readyz").status_code == 200
    stopping = True
    assert client.simulate_get("/readyz").status_code == 503
    assert client.simulate_get("/healthz").status_code == 200


class BrokenCounter:
    def labels(self, *values: str) -> BrokenCounter:
        raise OSError("No space left on device")


@pytest.mark.internal_error
def test_a_metrics_failure_never_fails_the_request_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    metrics.decisions = BrokenCounter()  # type: ignore[assignment]
    app = create_app(
        Runtime.from_settings(Settings(secret=DUMMY_SECRET)),
        decision_log=DecisionLog(io.StringIO()),
        metrics=metrics,
    )
    client = falcon.testing.TestClient(app)
    headers = {"Approov-Token": valid(), "Authorization": AUTHORIZATION}
    assert client.simulate_get("/auth", headers=headers).status_code == 204
    metrics.flush()  # here, not a second later in whichever test then runs the loop
    assert client.simulate_get("/auth", headers=headers).status_code == 204
    metrics.flush()
    failures = [r for r in caplog.records if r.getMessage().startswith("metrics not recorded")]
    assert len(failures) == 1
