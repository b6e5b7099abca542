"""Keys: asymmetric tokens, JWKS and kid, secret files and rotation windows."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authsvc.check.credentials import Credentials
from authsvc.check.jose import ES256, HS256, RS256
from authsvc.check.keys import Key, KeySet, parse_jwks, parse_pem
from authsvc.check.verify import Verdict, Verifier
from authsvc.config import MIN_SECRET_BYTES, ConfigError, Settings
from authsvc.policy import BindingMode, Reason
from authsvc.runtime import Runtime
from authsvc.store.keysource import KeySource, load_account_signing_key, load_keys
from tests.support.tokens import DUMMY_SECRET, DUMMY_SECRET_B64, OTHER_SECRET, b64url, sign, token

# --- RFC 7515 appendix A vectors -------------------------------------------------------------

RFC7515_PAYLOAD = (
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
)
RFC7515_A2_TOKEN = (
    "eyJhbGciOiJSUzI1NiJ9."
    + RFC7515_PAYLOAD
    + ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"  # noqa: E501
)
RFC7515_A2_JWK = {
    "kty": "RSA",
    "e": "AQAB",
    "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",  # noqa: E501
}
RFC7515_A3_TOKEN = (
    "eyJhbGciOiJFUzI1NiJ9."
    + RFC7515_PAYLOAD
    + ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)
RFC7515_A3_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}
FAR_FUTURE = 4_000_000_000


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_jwk(private_key: Any, kid: str | None = None, **extra: Any) -> dict[str, Any]:
    algorithm = (
        jwt.algorithms.RSAAlgorithm
        if isinstance(private_key, rsa.RSAPrivateKey)
        else (jwt.algorithms.ECAlgorithm)
    )
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(private_key.public_key()))
    return {**jwk, **({"kid": kid} if kid else {}), **extra}


def oct_jwk(secret: bytes, kid: str) -> dict[str, Any]:
    return {"kty": "oct", "k": b64url(secret).decode(), "kid": kid}


def signed(private_key: Any, algorithm: str, kid: str | None = None, **claims: Any) -> str:
    headers = {"kid": kid} if kid else None
    body = {"exp": FAR_FUTURE, **claims}
    return jwt.encode(body, private_key, algorithm=algorithm, headers=headers)


def verdict_of(keys: KeySet | KeySource, tok: str) -> Verdict:
    source = keys if isinstance(keys, KeySource) else KeySource(keys)
    credentials = Credentials((tok.encode(),), None)
    return Verifier(source).check(credentials, BindingMode.OFF)


def jwks_keys(*entries: dict[str, Any]) -> KeySet:
    return KeySet(tuple(parse_jwks(json.dumps({"keys": list(entries)}).encode())))


# --- vectors ---------------------------------------------------------------------------------


def test_rfc7515_a2_rs256_verifies_with_its_public_key_and_is_expired() -> None:
    verdict = verdict_of(jwks_keys(RFC7515_A2_JWK), RFC7515_A2_TOKEN)
    assert (verdict.reason, verdict.key) == (Reason.EXPIRED, "jwks:0")


def test_rfc7515_a3_es256_verifies_with_its_public_key_and_is_expired() -> None:
    verdict = verdict_of(jwks_keys(RFC7515_A3_JWK), RFC7515_A3_TOKEN)
    assert (verdict.reason, verdict.key) == (Reason.EXPIRED, "jwks:0")


def test_rfc7515_a2_token_is_denied_with_another_rsa_key(rsa_key: rsa.RSAPrivateKey) -> None:
    assert verdict_of(jwks_keys(public_jwk(rsa_key)), RFC7515_A2_TOKEN).reason is (
        Reason.SIGNATURE_INVALID
    )


def test_rfc7515_a3_signature_on_another_payload_is_denied() -> None:
    header, _, signature = RFC7515_A3_TOKEN.split(".")
    other = b64url(json.dumps({"exp": FAR_FUTURE}).encode()).decode()
    assert verdict_of(jwks_keys(RFC7515_A3_JWK), f"{header}.{other}.{signature}").reason is (
        Reason.SIGNATURE_INVALID
    )


def test_es256_signature_with_r_and_s_zero_is_denied() -> None:
    """Wycheproof: r = s = 0 must never verify (CVE-2022-21449 class)."""
    header, payload, _ = RFC7515_A3_TOKEN.split(".")
    zero = b64url(bytes(64)).decode()
    assert verdict_of(jwks_keys(RFC7515_A3_JWK), f"{header}.{payload}.{zero}").reason is (
        Reason.SIGNATURE_INVALID
    )


# --- the algorithms follow from the keys -----------------------------------------------------


def test_alg_confusion_hs256_signed_with_the_rsa_public_key_pem_is_denied(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    forged = sign({"alg": "HS256"}, {"exp": FAR_FUTURE}, secret=pem(rsa_key))
    only_rsa = KeySet((Key(RS256, rsa_key.public_key(), "public-key"),))
    assert verdict_of(only_rsa, forged).reason is Reason.ALG_NOT_ALLOWED
    with_a_secret = KeySet((*only_rsa.keys, Key(HS256, DUMMY_SECRET, "secret")))
    assert verdict_of(with_a_secret, forged).reason is Reason.SIGNATURE_INVALID


def test_secret_only_denies_rs256_and_es256_tokens(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    secret_only = KeySet((Key(HS256, DUMMY_SECRET, "secret"),))
    assert verdict_of(secret_only, signed(rsa_key, RS256)).reason is Reason.ALG_NOT_ALLOWED
    assert verdict_of(secret_only, signed(ec_key, ES256)).reason is Reason.ALG_NOT_ALLOWED


def test_rsa_only_denies_hs256_and_es256_tokens(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    rsa_only = KeySet((Key(RS256, rsa_key.public_key(), "public-key"),))
    assert verdict_of(rsa_only, token()).reason is Reason.ALG_NOT_ALLOWED
    assert verdict_of(rsa_only, signed(ec_key, ES256)).reason is Reason.ALG_NOT_ALLOWED
    assert verdict_of(rsa_only, signed(rsa_key, RS256)).reason is Reason.OK


@pytest.mark.parametrize("algorithm", ["RS384", "RS512", "PS256"])
def test_other_rsa_algorithms_are_denied_even_with_an_rsa_key(
    rsa_key: rsa.RSAPrivateKey, algorithm: str
) -> None:
    rsa_only = KeySet((Key(RS256, rsa_key.public_key(), "public-key"),))
    assert verdict_of(rsa_only, signed(rsa_key, algorithm)).reason is Reason.ALG_NOT_ALLOWED


# --- JWKS and kid ----------------------------------------------------------------------------


def test_jwks_with_mixed_key_types_verifies_each_by_kid(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    keys = jwks_keys(
        public_jwk(rsa_key, "r1"), public_jwk(ec_key, "e1"), oct_jwk(DUMMY_SECRET, "h1")
    )
    assert keys.algorithms == {RS256, ES256, HS256}
    cases = [
        (signed(rsa_key, RS256, "r1"), "jwks:r1"),
        (signed(ec_key, ES256, "e1"), "jwks:e1"),
        (jwt.encode({"exp": FAR_FUTURE}, DUMMY_SECRET, "HS256", headers={"kid": "h1"}), "jwks:h1"),
    ]
    for tok, label in cases:
        verdict = verdict_of(keys, tok)
        assert (verdict.reason, verdict.key) == (Reason.OK, label)


def test_token_whose_kid_names_no_key_is_denied(rsa_key: rsa.RSAPrivateKey) -> None:
    keys = jwks_keys(public_jwk(rsa_key, "r1"))
    assert verdict_of(keys, signed(rsa_key, RS256, "r2")).reason is Reason.KID_UNKNOWN


def test_kid_selects_the_key_so_another_keys_signature_is_denied(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    keys = jwks_keys(public_jwk(rsa_key, "r1"), public_jwk(other_rsa_key, "r2"))
    assert verdict_of(keys, signed(other_rsa_key, RS256, "r1")).reason is Reason.SIGNATURE_INVALID
    assert verdict_of(keys, signed(other_rsa_key, RS256, "r2")).key == "jwks:r2"


def test_token_without_kid_tries_every_key_of_its_algorithm_only(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    keys = jwks_keys(public_jwk(rsa_key, "r1"), public_jwk(other_rsa_key, "r2"))
    assert keys.candidates(RS256, None) == keys.keys
    assert keys.candidates(ES256, None) == ()
    assert verdict_of(keys, signed(other_rsa_key, RS256)).key == "jwks:r2"


def test_kid_is_ignored_when_no_key_has_an_id() -> None:
    """A bare secret has no id: a token's kid cannot select it or lock it out."""
    tok = jwt.encode({"exp": FAR_FUTURE}, DUMMY_SECRET, "HS256", headers={"kid": "anything"})
    assert verdict_of(KeySet((Key(HS256, DUMMY_SECRET, "secret"),)), tok).reason is Reason.OK


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"kty": "RSA", "e": "AQAB", "n": "AQAB" * 10}, "bits"),
        ({**RFC7515_A3_JWK, "crv": "P-384"}, "P-384"),
        (
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            "OKP",
        ),
        ({**RFC7515_A3_JWK, "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}, "private key"),
        ({**RFC7515_A2_JWK, "use": "enc"}, "use"),
        ({**RFC7515_A2_JWK, "alg": "RS512"}, "alg"),
        ({"kty": "oct", "k": "c2hvcnQ"}, "at least 32 bytes"),
        ({**RFC7515_A2_JWK, "kid": 7}, "kid must be a string"),
        ("not an object", "not an object"),
    ],
)
def test_unfit_jwks_keys_are_configuration_errors(entry: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_jwks(json.dumps({"keys": [entry]}).encode())


@pytest.mark.parametrize("document", [b"not json", b"[]", b'{"keys": {}}', b'{"keys": []}'])
def test_a_document_that_is_not_a_jwks_is_a_configuration_error(document: bytes) -> None:
    with pytest.raises(ValueError, match=r"JWKS|JSON|no keys"):
        parse_jwks(document)


def test_jwks_with_a_repeated_kid_is_a_configuration_error() -> None:
    entry = {**RFC7515_A3_JWK, "kid": "same"}
    with pytest.raises(ValueError, match="'same' is used by more than one key"):
        parse_jwks(json.dumps({"keys": [entry, entry]}).encode())


# --- files --------------------------------------------------------------------------------------


def settings_with(**env: str) -> Settings:
    return Settings.from_env(env)


def test_pem_public_keys_are_loaded_rsa_and_ec(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    for private_key, algorithm in ((rsa_key, RS256), (ec_key, ES256)):
        path = tmp_path / f"{algorithm}.pem"
        path.write_bytes(pem(private_key))
        keys = load_keys(settings_with(APPROOV_PUBLIC_KEY_FILE=str(path)))
        assert keys.algorithms == {algorithm}
        assert verdict_of(keys, signed(private_key, algorithm)).reason is Reason.OK


def test_rsa_key_of_1024_bits_is_a_configuration_error(tmp_path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    path = tmp_path / "small.pem"
    path.write_bytes(pem(small))
    with pytest.raises(ConfigError, match="RSA key of 1024 bits; at least 2048"):
        load_keys(settings_with(APPROOV_PUBLIC_KEY_FILE=str(path)))


def test_ec_key_not_on_p256_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "p384.pem"
    path.write_bytes(pem(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(ConfigError, match="only P-256"):
        load_keys(settings_with(APPROOV_PUBLIC_KEY_FILE=str(path)))


def test_every_unreadable_or_bad_key_file_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a key")
    (tmp_path / "bad.jwks").write_text("{}")
    settings = settings_with(
        APPROOV_BASE64_SECRET_FILE=str(tmp_path / "missing"),
        APPROOV_PUBLIC_KEY_FILE=str(tmp_path / "bad.pem"),
        APPROOV_JWKS_FILE=str(tmp_path / "bad.jwks"),
    )
    with pytest.raises(ConfigError) as raised:
        load_keys(settings)
    assert [p.split(" ")[0].rstrip(":") for p in raised.value.problems] == [
        "APPROOV_BASE64_SECRET_FILE",
        "APPROOV_PUBLIC_KEY_FILE",
        "APPROOV_JWKS_FILE",
    ]


@pytest.mark.parametrize("value", ["", "   "])
def test_no_key_setting_is_a_key_problem_listed_with_the_others(value: str, tmp_path: Path) -> None:
    settings = settings_with(
        APPROOV_BASE64_SECRET=value,
        APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET_FILE=str(tmp_path / "missing-account-key"),
    )
    with pytest.raises(ConfigError) as raised:
        Runtime.from_settings(settings)
    first, second = raised.value.problems
    assert first.startswith("no verification key: set APPROOV_BASE64_SECRET")
    assert second.startswith("APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET_FILE: cannot read")


def test_secret_file_is_read_and_its_trailing_newline_ignored(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(DUMMY_SECRET_B64 + "\n")
    keys = load_keys(settings_with(APPROOV_BASE64_SECRET_FILE=str(path)))
    assert [(key.algorithm, key.material) for key in keys.keys] == [(HS256, DUMMY_SECRET)]


def test_secret_file_with_a_short_secret_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(base64.b64encode(b"short").decode())
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        load_keys(settings_with(APPROOV_BASE64_SECRET_FILE=str(path)))


def test_secret_and_secret_file_together_are_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both set"):
        settings_with(
            APPROOV_BASE64_SECRET=DUMMY_SECRET_B64, APPROOV_BASE64_SECRET_FILE=str(tmp_path / "x")
        )


# --- rotation windows ------------------------------------------------------------------------


def test_previous_secret_is_accepted_and_named_in_the_verdict() -> None:
    settings = settings_with(
        APPROOV_BASE64_SECRET=base64.b64encode(OTHER_SECRET).decode(),
        APPROOV_BASE64_SECRET_PREVIOUS=DUMMY_SECRET_B64,
    )
    keys = load_keys(settings)
    assert verdict_of(keys, token()).key == "previous-secret-1"
    assert verdict_of(keys, token(secret=OTHER_SECRET)).key == "secret"


def test_token_of_a_secret_no_longer_configured_is_denied() -> None:
    keys = load_keys(settings_with(APPROOV_BASE64_SECRET=base64.b64encode(OTHER_SECRET).decode()))
    assert verdict_of(keys, token()).reason is Reason.SIGNATURE_INVALID


# --- JWKS URL: fetched at start-up, refreshed, last good set kept ---------------------------


class FakeJwksServer:
    def __init__(self, *entries: dict[str, Any]) -> None:
        self.document: bytes | None = json.dumps({"keys": list(entries)}).encode()
        self.fetches = 0

    def fetch(self, url: str, timeout: float) -> bytes:
        self.fetches += 1
        if self.document is None:
            raise OSError("connection refused")
        return self.document


def url_source(server: FakeJwksServer) -> KeySource:
    settings = settings_with(APPROOV_JWKS_URL="https://keys.example/jwks.json")
    fetch: Callable[[str, float], bytes] = server.fetch
    return KeySource.from_settings(settings, fetch=fetch)


def test_jwks_url_is_fetched_at_start_up(ec_key: ec.EllipticCurvePrivateKey) -> None:
    server = FakeJwksServer(public_jwk(ec_key, "e1"))
    source = url_source(server)
    assert (source.ready, server.fetches) == (True, 1)
    assert verdict_of(source, signed(ec_key, ES256, "e1")).key == "jwks-url:e1"


def test_service_is_not_ready_and_denies_until_the_jwks_url_answers(
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    server = FakeJwksServer(public_jwk(ec_key, "e1"))
    server.document = None
    source = url_source(server)
    assert not source.ready
    assert verdict_of(source, signed(ec_key, ES256, "e1")).reason is Reason.KEYS_UNAVAILABLE
    server.document = json.dumps({"keys": [public_jwk(ec_key, "e1")]}).encode()
    assert source.refresh()
    assert source.ready


def test_a_failed_refresh_keeps_the_last_good_keys(ec_key: ec.EllipticCurvePrivateKey) -> None:
    server = FakeJwksServer(public_jwk(ec_key, "e1"))
    source = url_source(server)
    for broken in (None, b"{not json", b'{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}'):
        server.document = broken
        assert not source.refresh()
        assert verdict_of(source, signed(ec_key, ES256, "e1")).reason is Reason.OK


def test_a_refresh_brings_new_keys_and_drops_removed_ones(
    ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    server = FakeJwksServer(public_jwk(ec_key, "e1"))
    source = url_source(server)
    server.document = json.dumps({"keys": [public_jwk(rsa_key, "r1")]}).encode()
    assert source.refresh()
    assert verdict_of(source, signed(rsa_key, RS256, "r1")).reason is Reason.OK
    assert verdict_of(source, signed(ec_key, ES256, "e1")).reason is Reason.ALG_NOT_ALLOWED


def test_static_keys_stay_beside_the_jwks_url_keys(ec_key: ec.EllipticCurvePrivateKey) -> None:
    server = FakeJwksServer(public_jwk(ec_key, "e1"))
    settings = settings_with(
        APPROOV_BASE64_SECRET=DUMMY_SECRET_B64, APPROOV_JWKS_URL="https://keys.example/jwks"
    )
    source = KeySource.from_settings(settings, fetch=server.fetch)
    assert [key.label for key in source.current.keys] == ["secret", "jwks-url:e1"]
    assert verdict_of(source, token()).reason is Reason.OK


# --- the words a user reads of each key problem, exactly (make mutate) -----------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"not json", "is not JSON"),
        (b"[]", 'is not a JWKS document ({"keys": [...]})'),
        (b'{"keys": []}', "holds no keys"),
        (
            json.dumps({"keys": [{**RFC7515_A2_JWK, "use": "enc"}]}).encode(),
            "key 0: use 'enc' is not sig",
        ),
        (
            json.dumps({"keys": [{**RFC7515_A2_JWK, "kid": "k1", "alg": "RS512"}]}).encode(),
            "key 'k1': alg 'RS512' does not fit kty RSA",
        ),
        (
            json.dumps(
                {
                    "keys": [
                        {**RFC7515_A3_JWK, "kid": "a"},
                        {**RFC7515_A3_JWK, "kid": "a"},
                        {**RFC7515_A2_JWK, "kid": "b"},
                        {**RFC7515_A2_JWK, "kid": "b"},
                    ]
                }
            ).encode(),
            "key id 'a' is used by more than one key; key id 'b' is used by more than one key",
        ),
    ],
)
def test_each_jwks_problem_is_said_in_these_words(document: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_jwks(document)


def test_a_pem_problem_is_said_in_these_words() -> None:
    expected = "is not a PEM public key (-----BEGIN PUBLIC KEY-----)"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        parse_pem(b"not a key")
    ed25519 = Ed25519PrivateKey.generate().public_key()
    expected = f"{type(ed25519).__name__} keys are not supported; use RSA or EC P-256"
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        parse_pem(ed25519.public_bytes(serialization.Encoding.PEM, spki))


def test_keys_are_described_by_their_labels(ec_key: ec.EllipticCurvePrivateKey) -> None:
    assert KeySet().describe() == "none"
    keys = KeySet((Key(HS256, DUMMY_SECRET, "secret"), parse_pem(pem(ec_key))))
    assert keys.describe() == "secret, public-key"


def test_an_oct_jwk_of_exactly_the_minimum_length_is_accepted() -> None:
    (key,) = parse_jwks(json.dumps({"keys": [oct_jwk(b"k" * MIN_SECRET_BYTES, "min")]}).encode())
    assert (key.algorithm, key.kid) == (HS256, "min")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        parse_jwks(json.dumps({"keys": [oct_jwk(b"k" * (MIN_SECRET_BYTES - 1), "short")]}).encode())


def test_a_failed_jwks_fetch_is_logged_without_the_urls_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_with(APPROOV_JWKS_URL="https://u:pw@keys.example/jwks?api_key=k3y")
    server = FakeJwksServer({})
    server.document = None
    KeySource.from_settings(settings, fetch=server.fetch)
    assert "JWKS https://***@keys.example/jwks?api_key=*** not loaded" in caplog.text
    assert "k3y" not in caplog.text
    assert "pw@" not in caplog.text


def test_the_account_key_file_is_read_again_on_each_load(tmp_path: Path) -> None:
    """A HUP reload is a new load: a rotated account key in its file takes effect."""
    key_file = tmp_path / "account-key"
    settings = settings_with(
        APPROOV_BASE64_SECRET=DUMMY_SECRET_B64,
        APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET_FILE=str(key_file),
    )
    key_file.write_text(base64.urlsafe_b64encode(bytes(16)).decode().rstrip("=") + "\n")
    assert load_account_signing_key(settings) == bytes(16)
    key_file.write_text(base64.urlsafe_b64encode(bytes(range(20))).decode() + "\n")
    assert load_account_signing_key(settings) == bytes(range(20))


def test_a_bad_account_key_file_is_listed_with_every_other_key_problem(tmp_path: Path) -> None:
    (tmp_path / "account-key").write_text("not a key!")
    settings = settings_with(
        APPROOV_BASE64_SECRET_FILE=str(tmp_path / "missing-secret"),
        APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET_FILE=str(tmp_path / "account-key"),
    )
    with pytest.raises(ConfigError) as error:
        Runtime.from_settings(settings)
    problems = error.value.problems
    assert any(p.startswith("APPROOV_BASE64_SECRET_FILE: cannot read") for p in problems)
    assert any(
        "APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET_FILE" in p and "base64url" in p for p in problems
    )
