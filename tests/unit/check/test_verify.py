"""The verification rules, one rule per test, on the pure verifier (no HTTP)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from authsvc.check.credentials import Credentials
from authsvc.check.verify import MAX_TOKEN_BYTES, Verdict, Verifier
from authsvc.policy import BindingMode, Decision, Reason
from tests.support.tokens import (
    DUMMY_SECRET,
    HS256_HEADER,
    OTHER_SECRET,
    b64url,
    bound_token,
    json_bytes,
    pay_for,
    secret_verifier,
    sign,
    token,
)

BINDING = b"Bearer abc"
NOW = 1_800_000_000.0


def check(
    tok: str | bytes | None,
    binding: bytes | None = BINDING,
    mode: BindingMode = BindingMode.REQUIRED,
    verifier: Verifier | None = None,
) -> Verdict:
    raw = tok.encode() if isinstance(tok, str) else tok
    credentials = Credentials(() if raw is None else (raw,), binding)
    return (verifier or secret_verifier(DUMMY_SECRET)).check(credentials, mode)


def reason(tok: str | bytes | None, **kwargs: Any) -> Reason:
    return check(tok, **kwargs).reason


def at_now(**kwargs: Any) -> Verifier:
    return secret_verifier(DUMMY_SECRET, clock=lambda: NOW, **kwargs)


# --- allowed ---------------------------------------------------------------------------------


def test_valid_token_bound_to_the_binding_header_is_allowed() -> None:
    verdict = check(bound_token(BINDING))
    assert verdict == Verdict(Reason.OK, Decision.ALLOW, verdict.claims, key="secret")
    assert verdict.claims is not None
    assert verdict.claims["pay"] == pay_for(BINDING)


def test_approov_quickstart_shaped_token_is_allowed() -> None:
    """Claims as Approov issues them: exp, ip, did, pay; the `ip` claim is not compared."""
    claims: dict[str, Any] = {
        "ip": "1.2.3.4",
        "did": "ExampleApproovTokenDID==",
        "pay": pay_for(b"Bearer x"),
    }
    assert reason(token(**claims), binding=b"Bearer x") is Reason.OK


def test_float_exp_is_accepted() -> None:
    assert reason(token(exp=NOW + 10.5), verifier=at_now(), mode=BindingMode.OFF) is Reason.OK


def test_iat_is_not_checked() -> None:
    assert reason(token(iat="not a time", pay=pay_for(BINDING))) is Reason.OK


# --- RFC 7515 A.1 (HS256) as a wrong-key and an expired vector ----------------------------------

RFC7515_A1_TOKEN = (
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
RFC7515_A1_KEY = base64.urlsafe_b64decode(
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow=="
)


def test_rfc7515_a1_token_is_denied_with_another_key() -> None:
    assert reason(RFC7515_A1_TOKEN) is Reason.SIGNATURE_INVALID


def test_rfc7515_a1_token_verifies_with_its_key_and_is_expired() -> None:
    """Its JSON has CRLF whitespace; its exp is in 2011."""
    assert reason(RFC7515_A1_TOKEN, verifier=secret_verifier(RFC7515_A1_KEY)) is Reason.EXPIRED


# --- algorithm: HS256 only, never chosen by the token ------------------------------------------


@pytest.mark.parametrize(
    "alg", ["none", "None", "NONE", "hs256", "HS384", "HS512", "RS256", "ES256", "PS256", "", None]
)
def test_any_alg_but_hs256_is_denied(alg: str | None) -> None:
    digest = {"HS384": "sha384", "HS512": "sha512"}.get(str(alg), "sha256")
    tok = sign({"alg": alg, "typ": "JWT"}, {"exp": 4_000_000_000}, digest=digest)
    assert reason(tok, mode=BindingMode.OFF) is Reason.ALG_NOT_ALLOWED


def test_header_without_alg_is_denied() -> None:
    assert reason(sign({"typ": "JWT"}, {"exp": 4_000_000_000})) is Reason.ALG_NOT_ALLOWED


def test_alg_none_with_empty_signature_is_denied() -> None:
    unsigned = b64url(json_bytes({"alg": "none"})) + b"." + b64url(json_bytes({"exp": 4e9})) + b"."
    assert reason(unsigned) is Reason.TOKEN_MALFORMED


# --- signature --------------------------------------------------------------------------------


def test_token_signed_with_another_secret_is_denied() -> None:
    assert reason(bound_token(BINDING, secret=OTHER_SECRET)) is Reason.SIGNATURE_INVALID


def test_truncated_signature_is_denied() -> None:
    signing_input, signature = bound_token(BINDING).rsplit(".", 1)
    short = b64url(base64.urlsafe_b64decode(signature + "=")[:16]).decode()
    assert reason(f"{signing_input}.{short}") is Reason.SIGNATURE_INVALID


def test_signature_of_another_token_is_denied() -> None:
    first, second = bound_token(BINDING, did="a"), bound_token(BINDING, did="b")
    spliced = first.rsplit(".", 1)[0] + "." + second.rsplit(".", 1)[1]
    assert reason(spliced) is Reason.SIGNATURE_INVALID


def test_payload_changed_after_signing_is_denied() -> None:
    header, _, signature = bound_token(BINDING).split(".")
    forged = b64url(json_bytes({"exp": 4_000_000_000, "pay": pay_for(BINDING)})).decode()
    assert reason(f"{header}.{forged}.{signature}") is Reason.SIGNATURE_INVALID


# --- exp and nbf ------------------------------------------------------------------------------


def test_token_without_exp_is_denied() -> None:
    assert reason(sign(HS256_HEADER, {"pay": pay_for(BINDING)})) is Reason.CLAIMS_INVALID


@pytest.mark.parametrize(
    ("exp_json", "case"),
    [
        (b'"4000000000"', "string"),
        ('"\uff14000000000"'.encode(), "unicode-digit string"),
        (b"true", "bool"),
        (b"null", "null"),
        (b"[4000000000]", "list"),
        (b'{"t": 4000000000}', "object"),
        (b"1e400", "overflows to infinity"),
        (b"253402300800", "after year 9999"),
        (b"-62135596801", "before year 1"),
        (b"9" * 400, "huge integer"),
    ],
)
def test_exp_that_is_not_a_finite_json_number_a_datetime_can_hold_is_denied(
    exp_json: bytes, case: str
) -> None:
    payload = b'{"exp":' + exp_json + b"}"
    assert reason(sign(HS256_HEADER, payload), mode=BindingMode.OFF) is Reason.CLAIMS_INVALID, case


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_exp_spelled_as_a_non_json_constant_is_malformed(constant: bytes) -> None:
    payload = b'{"exp":' + constant + b"}"
    assert reason(sign(HS256_HEADER, payload), mode=BindingMode.OFF) is Reason.TOKEN_MALFORMED


def test_expired_token_is_denied() -> None:
    assert reason(token(exp=NOW - 1), verifier=at_now(), mode=BindingMode.OFF) is Reason.EXPIRED


def test_token_expiring_this_second_is_expired() -> None:
    """exp is the first instant the token is invalid (as PyJWT and RFC 7519 4.1.4)."""
    assert reason(token(exp=NOW), verifier=at_now(), mode=BindingMode.OFF) is Reason.EXPIRED


def test_leeway_keeps_a_just_expired_token_valid() -> None:
    verifier = at_now(leeway_seconds=30)
    assert reason(token(exp=NOW - 29), verifier=verifier, mode=BindingMode.OFF) is Reason.OK
    assert reason(token(exp=NOW - 30), verifier=verifier, mode=BindingMode.OFF) is Reason.EXPIRED


def test_token_with_nbf_in_the_future_is_denied() -> None:
    tok = token(exp=NOW + 60, nbf=NOW + 10)
    assert reason(tok, verifier=at_now(), mode=BindingMode.OFF) is Reason.NOT_YET_VALID


def test_leeway_applies_to_nbf() -> None:
    tok = token(exp=NOW + 60, nbf=NOW + 10)
    assert reason(tok, verifier=at_now(leeway_seconds=10), mode=BindingMode.OFF) is Reason.OK


@pytest.mark.parametrize("nbf", ["0", True, None, [0], 1e400])
def test_nbf_that_is_not_a_number_is_denied(nbf: Any) -> None:
    payload = json.dumps({"exp": 4_000_000_000, "nbf": nbf}).replace("Infinity", "1e400")
    tok = sign(HS256_HEADER, payload.encode())
    assert reason(tok, mode=BindingMode.OFF) is Reason.CLAIMS_INVALID


# --- issuer and audience, only when configured -------------------------------------------------


def test_issuer_is_checked_only_when_configured() -> None:
    tok = token(iss="someone", pay=pay_for(BINDING))
    assert reason(tok) is Reason.OK
    assert (
        reason(tok, verifier=secret_verifier(DUMMY_SECRET, issuer="approov"))
        is Reason.CLAIMS_INVALID
    )
    assert (
        reason(
            token(iss="approov", pay=pay_for(BINDING)),
            verifier=secret_verifier(DUMMY_SECRET, issuer="approov"),
        )
        is Reason.OK
    )


@pytest.mark.parametrize(
    ("aud", "expected"),
    [
        ("api", Reason.OK),
        (["x", "api"], Reason.OK),
        ("other", Reason.CLAIMS_INVALID),
        (None, Reason.CLAIMS_INVALID),
        ({"api": 1}, Reason.CLAIMS_INVALID),
    ],
)
def test_audience_when_configured_must_match_or_be_listed(aud: Any, expected: Reason) -> None:
    claims = {"pay": pay_for(BINDING)} if aud is None else {"aud": aud, "pay": pay_for(BINDING)}
    assert (
        reason(token(**claims), verifier=secret_verifier(DUMMY_SECRET, audience="api")) is expected
    )


# --- strict JOSE ------------------------------------------------------------------------------


def _with_segment(tok: str, index: int, segment: bytes) -> str:
    parts = tok.split(".")
    parts[index] = segment.decode("latin-1")
    return ".".join(parts)


def test_duplicate_keys_in_the_header_are_malformed() -> None:
    header = b'{"alg":"HS256","alg":"HS256"}'
    assert reason(sign(header, {"exp": 4_000_000_000})) is Reason.TOKEN_MALFORMED


def test_duplicate_keys_in_the_payload_are_malformed() -> None:
    payload = b'{"exp":1,"exp":4000000000}'
    assert reason(sign(HS256_HEADER, payload), mode=BindingMode.OFF) is Reason.TOKEN_MALFORMED


def test_utf8_bom_before_json_is_malformed() -> None:
    payload = b"\xef\xbb\xbf" + json_bytes({"exp": 4_000_000_000})
    assert reason(sign(HS256_HEADER, payload), mode=BindingMode.OFF) is Reason.TOKEN_MALFORMED


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_json_not_in_utf8_is_malformed(encoding: str) -> None:
    header = json.dumps(HS256_HEADER).encode(encoding)
    assert reason(sign(header, {"exp": 4_000_000_000})) is Reason.TOKEN_MALFORMED


def test_invalid_utf8_in_the_payload_is_malformed() -> None:
    payload = b'{"exp":4000000000,"did":"\xff"}'
    assert reason(sign(HS256_HEADER, payload), mode=BindingMode.OFF) is Reason.TOKEN_MALFORMED


@pytest.mark.parametrize("value", [b"[]", b'"HS256"', b"1", b"null", b""])
def test_header_that_is_not_a_json_object_is_malformed(value: bytes) -> None:
    assert reason(sign(value, {"exp": 4_000_000_000})) is Reason.TOKEN_MALFORMED


@pytest.mark.parametrize("value", [b"[]", b"4000000000", b"{", b"{}x"])
def test_payload_that_is_not_a_json_object_is_malformed(value: bytes) -> None:
    assert reason(sign(HS256_HEADER, value), mode=BindingMode.OFF) is Reason.TOKEN_MALFORMED


def test_deeply_nested_json_is_malformed_not_a_crash() -> None:
    payload = b'{"exp":4000000000,"x":' + b"[" * 1400 + b"]" * 1400 + b"}"
    assert reason(sign(HS256_HEADER, payload), mode=BindingMode.OFF) is Reason.TOKEN_MALFORMED


@pytest.mark.parametrize("parameter", ["crit", "b64", "jku", "x5u", "jwk", "x5c"])
def test_header_parameters_that_change_processing_or_name_keys_are_denied(parameter: str) -> None:
    header = {**HS256_HEADER, parameter: ["exp"] if parameter == "crit" else "x"}
    assert reason(sign(header, {"exp": 4_000_000_000}), mode=BindingMode.OFF) is (
        Reason.TOKEN_MALFORMED
    )


@pytest.mark.parametrize("index", [0, 1, 2])
def test_padded_segment_is_malformed(index: int) -> None:
    tok = bound_token(BINDING)
    padded = _with_segment(tok, index, tok.split(".")[index].encode() + b"=")
    assert reason(padded) is Reason.TOKEN_MALFORMED


@pytest.mark.parametrize("character", ["+", "/", " ", "\t", "%", "\u00e9"])
def test_character_outside_base64url_is_malformed(character: str) -> None:
    tok = bound_token(BINDING)
    head, payload, signature = tok.split(".")
    assert reason(f"{head}.{payload[:5]}{character}{payload[5:]}.{signature}") is (
        Reason.TOKEN_MALFORMED
    )


def test_non_canonical_base64url_is_malformed() -> None:
    """Trailing bits that decode to the same bytes would give one token two spellings."""
    tok = bound_token(BINDING)
    head, payload, signature = tok.split(".")
    last = signature[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) + 1]  # 32-byte signature: the low 2 bits are padding
    assert reason(f"{head}.{payload}.{signature[:-1]}{twin}") is Reason.TOKEN_MALFORMED


@pytest.mark.parametrize("segments", [1, 2, 4, 5])
def test_token_without_exactly_three_segments_is_malformed(segments: int) -> None:
    parts = (bound_token(BINDING).split(".") * 2)[:segments]
    assert reason(".".join(parts)) is Reason.TOKEN_MALFORMED


@pytest.mark.parametrize("decorate", [" {}", "{} ", "Bearer {}", "{}\t", '"{}"', "{}.", ".{}"])
def test_anything_around_the_token_is_malformed(decorate: str) -> None:
    assert reason(decorate.format(bound_token(BINDING))) is Reason.TOKEN_MALFORMED


def test_token_longer_than_the_limit_is_denied_without_parsing() -> None:
    padding = "x" * MAX_TOKEN_BYTES
    assert reason(bound_token(BINDING, filler=padding)) is Reason.TOKEN_TOO_LONG


def test_token_at_the_limit_is_parsed() -> None:
    base = bound_token(BINDING, filler="")
    filler = "x" * ((MAX_TOKEN_BYTES - len(base)) * 3 // 4)
    tok = bound_token(BINDING, filler=filler)
    assert len(tok) <= MAX_TOKEN_BYTES
    assert reason(tok) is Reason.OK


# --- token header presence --------------------------------------------------------------------


def test_request_without_token_is_denied() -> None:
    assert reason(None) is Reason.TOKEN_MISSING


def test_empty_token_is_missing() -> None:
    assert reason(b"") is Reason.TOKEN_MISSING


@pytest.mark.parametrize("second", [b"", b"x"])
def test_token_header_sent_twice_is_denied_even_if_one_copy_is_empty(second: bytes) -> None:
    tok = bound_token(BINDING).encode()
    verdict = secret_verifier(DUMMY_SECRET).check(
        Credentials((tok, second), BINDING), BindingMode.OFF
    )
    assert verdict.reason is Reason.TOKEN_DUPLICATED


# --- binding ----------------------------------------------------------------------------------


def test_required_binding_without_pay_is_denied() -> None:
    assert reason(token()) is Reason.BINDING_MISSING


def test_required_binding_without_the_binding_header_is_denied() -> None:
    assert reason(bound_token(BINDING), binding=None) is Reason.BINDING_HEADER_MISSING


def test_pay_for_another_binding_value_is_denied() -> None:
    assert reason(bound_token(b"Bearer other")) is Reason.BINDING_MISMATCH


def test_pay_is_over_the_full_header_value_not_the_bearer_credential() -> None:
    assert reason(token(pay=pay_for(b"abc"))) is Reason.BINDING_MISMATCH


@pytest.mark.parametrize(
    ("spelling", "transform"),
    [
        ("url-safe alphabet", lambda pay: pay.replace("+", "-").replace("/", "_")),
        ("unpadded", lambda pay: pay.rstrip("=")),
        ("lower-cased", str.lower),
        ("hex", lambda _pay: "0" * 64),
        ("surrounded by spaces", lambda pay: f" {pay} "),
    ],
)
def test_pay_must_be_standard_padded_base64_exactly(spelling: str, transform: Any) -> None:
    value = b"Bearer ~~~>>>???"  # digest with + and / in standard base64
    pay = pay_for(value)
    assert "=" in pay
    assert reason(token(pay=transform(pay)), binding=value) is Reason.BINDING_MISMATCH, spelling


@pytest.mark.parametrize("pay", [None, "", 123, ["x"], "\u00e9t\u00e9", "\ud800"])
def test_pay_that_is_not_the_expected_string_is_a_mismatch_not_a_crash(pay: Any) -> None:
    tok = sign(HS256_HEADER, json.dumps({"exp": 4_000_000_000, "pay": pay}).encode())
    assert reason(tok, mode=BindingMode.IF_PRESENT) is Reason.BINDING_MISMATCH


def test_binding_value_is_hashed_as_raw_bytes() -> None:
    """Not re-encoded: a latin-1 byte stays one byte, as nginx and the app SDK send it."""
    value = b"Bearer caf\xe9"
    assert reason(bound_token(value), binding=value) is Reason.OK
    assert reason(token(pay=pay_for("Bearer café".encode())), binding=value) is (
        Reason.BINDING_MISMATCH
    )


def test_if_present_allows_a_token_without_pay() -> None:
    assert reason(token(), binding=None, mode=BindingMode.IF_PRESENT) is Reason.OK


def test_if_present_checks_a_token_with_pay() -> None:
    assert reason(bound_token(b"Bearer other"), mode=BindingMode.IF_PRESENT) is (
        Reason.BINDING_MISMATCH
    )


def test_binding_off_ignores_pay_and_the_header() -> None:
    assert reason(bound_token(b"Bearer other"), binding=None, mode=BindingMode.OFF) is Reason.OK


def test_binding_header_sent_twice_with_different_values_is_denied() -> None:
    credentials = Credentials((bound_token(BINDING).encode(),), BINDING, binding_conflict=True)
    verdict = secret_verifier(DUMMY_SECRET).check(credentials, BindingMode.REQUIRED)
    assert (verdict.reason, verdict.decision) == (Reason.BINDING_HEADER_DUPLICATED, Decision.DENY)
    assert not verdict.allowed


# --- monitor mode -----------------------------------------------------------------------------


def test_invalid_token_in_token_monitor_mode_is_allowed_as_monitor() -> None:
    verifier = secret_verifier(DUMMY_SECRET, abort_on_invalid_token=False)
    verdict = check(bound_token(BINDING, secret=OTHER_SECRET), verifier=verifier)
    assert (verdict.reason, verdict.decision, verdict.allowed) == (
        Reason.SIGNATURE_INVALID,
        Decision.MONITOR,
        True,
    )


def test_token_monitor_mode_does_not_excuse_binding_failures() -> None:
    verifier = secret_verifier(DUMMY_SECRET, abort_on_invalid_token=False)
    verdict = check(bound_token(b"Bearer other"), verifier=verifier)
    assert (verdict.reason, verdict.decision) == (Reason.BINDING_MISMATCH, Decision.DENY)


def test_binding_failure_in_binding_monitor_mode_is_allowed_as_monitor() -> None:
    verifier = secret_verifier(DUMMY_SECRET, abort_on_invalid_binding=False)
    verdict = check(bound_token(b"Bearer other"), verifier=verifier)
    assert (verdict.reason, verdict.decision) == (Reason.BINDING_MISMATCH, Decision.MONITOR)


def test_missing_pay_is_a_binding_failure_for_the_monitor_flags() -> None:
    verifier = secret_verifier(DUMMY_SECRET, abort_on_invalid_binding=False)
    assert check(token(), verifier=verifier).decision is Decision.MONITOR


def test_binding_monitor_mode_does_not_excuse_invalid_tokens() -> None:
    verifier = secret_verifier(DUMMY_SECRET, abort_on_invalid_binding=False)
    assert check(token(exp=1), verifier=verifier).decision is Decision.DENY


def test_claims_are_given_only_for_a_verified_signature() -> None:
    assert check(bound_token(BINDING, secret=OTHER_SECRET)).claims is None
    expired = check(token(exp=NOW - 5, did="d"), verifier=at_now())
    assert expired.claims is not None
    assert expired.claims["did"] == "d"


@pytest.mark.parametrize("kid", [7, None, ["a"], {"k": 1}])
def test_kid_that_is_not_a_string_is_malformed(kid: Any) -> None:
    assert reason(
        sign({**HS256_HEADER, "kid": kid}, {"exp": 4_000_000_000}), mode=BindingMode.OFF
    ) is (Reason.TOKEN_MALFORMED)


def test_a_verdict_monitor_mode_lets_through_is_never_marked_as_from_the_cache() -> None:
    """Only allowed verdicts are cached; what monitor mode lets through is a fresh verdict, so
    nothing memoised for a cached allow (headers, log fragments) is reused for it."""
    monitored = Verdict(Reason.BINDING_MISMATCH, Decision.DENY, cached=True).monitored()
    assert (monitored.decision, monitored.cached) == (Decision.MONITOR, False)
