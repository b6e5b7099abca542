"""What Approov's app SDKs send besides a token, through the app: the fetch status, the trace
ids, a token moved to another header with a prefix, and which signature verified. None of it
changes a verdict but as its rule says; all of it reaches the decision line."""

from __future__ import annotations

import pytest

from authsvc.policy import BindingMode, SigningMode
from tests.app.service import AUTHORIZATION, Service
from tests.app.test_signing_http import NGINX_CONTEXT
from tests.support.signatures import TEST_ACCOUNT_KEY, mskid_token, request, sign
from tests.support.tokens import bound_token

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def valid() -> str:
    return bound_token(AUTHORIZATION.encode())


# --- the fetch status --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token_header", "status_header", "logged"),
    [
        ("", "no_network", "no_network"),  # okhttp 3.7, 3.8: the token header empty
        (None, "rejected", "rejected"),  # later 3.8: the token header absent
        ("NO_NETWORK", None, "no_network"),  # setUseApproovStatusIfNoToken: the name instead
        ("POOR_NETWORK", "poor_network", "poor_network"),
        (None, "something_new", "other"),  # the vocabulary stays bounded
        (None, None, None),  # a script without the SDK: no status at all
    ],
)
def test_a_request_without_a_token_is_token_missing_with_the_status_the_app_reported(
    token_header: str | None, status_header: str | None, logged: str | None
) -> None:
    service = Service()
    headers = {} if status_header is None else {"Approov-Status": status_header}
    result = service.auth(token_header, headers=headers)
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (401, "token_missing")
    assert service.last_line().get("approov_status") == logged


def test_a_status_never_changes_the_verdict_of_a_valid_token() -> None:
    service = Service()
    result = service.auth(valid(), headers={"Approov-Status": "rejected"})
    assert result.status_code == 204
    assert service.last_line()["approov_status"] == "rejected"


def test_an_unknown_upper_case_word_in_the_token_header_is_a_malformed_token() -> None:
    service = Service()
    assert service.auth("NOT_A_STATUS").headers["X-Approov-Reason"] == "token_malformed"
    assert "approov_status" not in service.last_line()


def test_the_status_header_is_configurable_and_an_empty_name_turns_it_off() -> None:
    renamed = Service(status_header="X-Fetch-Status")
    renamed.auth(None, headers={"X-Fetch-Status": "no_network", "Approov-Status": "rejected"})
    assert renamed.last_line()["approov_status"] == "no_network"
    off = Service(status_header=None)
    off.auth(None, headers={"Approov-Status": "no_network"})
    assert "approov_status" not in off.last_line()


def test_metrics_count_checks_by_the_status_the_app_reported() -> None:
    service = Service()
    for status in ("no_network", "no_network", "weird"):
        service.auth(None, headers={"Approov-Status": status})
    service.auth(None)
    lines = service.client.simulate_get("/metrics").text.splitlines()
    assert 'authsvc_approov_status_total{status="no_network"} 2.0' in lines
    assert 'authsvc_approov_status_total{status="other"} 1.0' in lines
    assert not any("weird" in line for line in lines)


# --- trace ids -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "logged"),
    [
        ("dGhlLXRyYWNlLWlk", "dGhlLXRyYWNlLWlk"),
        ("dGhlLXRyYWNl_-aWQ=", "dGhlLXRyYWNl_-aWQ="),
        ("0af7651916cd43dd8448eb211c80319c", "0af7651916cd43dd8448eb211c80319c"),
        ("a" * 128, "a" * 128),
        ("a" * 129, None),
        ("not a trace id", None),
        ("", None),
    ],
)
def test_the_approov_trace_id_is_logged_when_it_is_base64url_or_hex(
    sent: str, logged: str | None
) -> None:
    service = Service()
    service.auth(valid(), headers={"Approov-TraceID": sent})
    assert service.last_line().get("approov_trace_id") == logged


@pytest.mark.parametrize(
    ("traceparent", "logged"),
    [
        (TRACEPARENT, "4bf92f3577b34da6a3ce929d0e0e4736"),
        (
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        (TRACEPARENT + "-more", None),  # version 00 has four fields
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None),
        ("garbage", None),
    ],
)
def test_the_w3c_trace_id_is_logged_from_a_well_formed_traceparent(
    traceparent: str, logged: str | None
) -> None:
    service = Service()
    service.auth(None, headers={"traceparent": traceparent})
    assert service.last_line().get("trace_id") == logged


# --- a token moved to another header, with a prefix ------------------------------------------


def bearer_service() -> Service:
    """The app moved its token: `setTokenHeader("Authorization", "Bearer ")`."""
    return Service(
        token_header="Authorization",
        token_prefix="Bearer ",
        binding_headers=("X-Session",),
        binding_mode=BindingMode.OFF,
    )


@pytest.mark.parametrize(
    ("value", "status", "reason"),
    [
        ("Bearer {token}", 204, "ok"),
        ("{token}", 401, "token_malformed"),  # no prefix: whatever follows, malformed
        ("Basic {token}", 401, "token_malformed"),
        ("Bearer", 401, "token_missing"),
        ("Bearer NO_NETWORK", 401, "token_missing"),
    ],
)
def test_the_configured_prefix_is_stripped_and_a_value_without_it_is_malformed(
    value: str, status: int, reason: str
) -> None:
    service = bearer_service()
    result = service.auth(None, authorization=value.format(token=valid()))
    assert (result.status_code, result.headers["X-Approov-Reason"]) == (status, reason)


def test_a_cached_allow_never_answers_the_same_token_without_its_prefix() -> None:
    service = bearer_service()
    tok = valid()
    assert service.auth(None, authorization=f"Bearer {tok}").status_code == 204
    assert service.auth(None, authorization=f"Bearer {tok}").status_code == 204
    assert service.auth(None, authorization=tok).headers["X-Approov-Reason"] == "token_malformed"


# --- which signature verified ------------------------------------------------------------------


@pytest.mark.parametrize("label", ["install", "account"])
def test_an_allow_that_verified_a_signature_says_which_in_its_decision_line(label: str) -> None:
    service = Service(binding_mode=BindingMode.OFF, account_signing_key=TEST_ACCOUNT_KEY)
    message = request(token_value=mskid_token()) if label == "account" else request()
    sign(message, label=label)
    headers = [*message.header_pairs(), *NGINX_CONTEXT]
    result = service.check(headers, path="/auth-signing-required")
    assert (result.status, result.reason) == (204, "ok")
    assert service.last_line()["signed_by"] == label


def test_an_allow_without_a_signature_says_nothing_of_one() -> None:
    service = Service(signing_mode=SigningMode.IF_PRESENT)
    service.auth(valid())
    assert "signed_by" not in service.last_line()
