"""Signed requests for the message signing tests.

The signer is independent of authsvc: PyPI `http-message-signatures` builds the signature base
and signs it. The key and the token are Approov's own test vectors (the ASP.NET quickstart's
`test-scripts/request_tests_approov_msg.sh`).
"""

from __future__ import annotations

import base64
import datetime
import re
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_private_key
from http_message_signatures import HTTPMessageSigner, algorithms
from http_message_signatures.resolvers import MappingKeyResolver

from authsvc.check.message import ClientRequest
from tests.support.tokens import token

# Approov's test installation key (EC P-256): the private key as SEC1 DER, `ipk` as SPKI DER.
APPROOV_TEST_PRIVATE_KEY = (
    "MHcCAQEEIHWZ2Ueq6odQNG+aaYmEbp7C6nujYNGr7nYKK2jqQ2asoAoGCCqGSM49AwEHoUQDQgAEJSm4DMcivAwvhM+"
    "KNce2C/X26cj3oGyUwWVUPuNuZHtd2qyVsM+0g7qX73Qh0Of6fn10AApLnl8vRQsvx94fZQ=="
)
APPROOV_TEST_IPK = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJSm4DMcivAwvhM+KNce2C/X26cj3oGyUwWVUPuNuZHtd2qyVsM+0g7q"
    "X73Qh0Of6fn10AApLnl8vRQsvx94fZQ=="
)
# Approov's test token carrying that `ipk` (exp 1999999999), signed with its test secret.
APPROOV_TEST_SECRET = base64.urlsafe_b64decode(
    "TEST-SECRET_TEST-SECRET_TEST-SECRET_TEST-SECRET_TEST-SECRET_TEST-SECRET_TEST-SECRET_AA=="
)
APPROOV_TEST_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJhcHByb292LmlvIiwiZXhwIjoxOTk5OTk5OTk5LCJpYXQi"
    "OjE3MDAwMDAwMDAsImlzcyI6IkFwcHJvb3ZBY2NvdW50SUQuYXBwcm9vdi5pbyIsInN1YiI6ImFwcHJvb3Z8RXhhbXBs"
    "ZUFwcHJvb3ZUb2tlbkRJRD09IiwiaXAiOiIxLjIuMy40IiwiaXBrIjoiTUZrd0V3WUhLb1pJemowQ0FRWUlLb1pJemow"
    "REFRY0RRZ0FFSlNtNERNY2l2QXd2aE0rS05jZTJDL1gyNmNqM29HeVV3V1ZVUHVOdVpIdGQycXlWc00rMGc3cVg3M1Fo"
    "ME9mNmZuMTBBQXBMbmw4dlJRc3Z4OTRmWlE9PSIsImRpZCI6IkV4YW1wbGVBcHByb292VG9rZW5ESUQ9PSJ9.hV6xTkG"
    "sp9uWwrD-yKkIGTBJawbofJEsuRLw9Qa5YXY"
)
TEST_KEY = load_der_private_key(base64.b64decode(APPROOV_TEST_PRIVATE_KEY), password=None)
assert isinstance(TEST_KEY, ec.EllipticCurvePrivateKey)

# A test account message signing key (`approov secret -messageSigningKey get-base64url` prints
# such a key) and the id a token names it by in `mskid`.
TEST_ACCOUNT_KEY = bytes(range(100, 132))
TEST_ACCOUNT_KEY_B64URL = base64.urlsafe_b64encode(TEST_ACCOUNT_KEY).rstrip(b"=").decode()
TEST_MSKID = "test-account-key-1"

# What Approov's SDKs cover by default (the token header, and the others when present).
SDK_COMPONENTS = ("@method", "@target-uri", "approov-token")
SDK_LIFETIME_SECONDS = 15


def mskid_token(mskid: str = TEST_MSKID, **claims: Any) -> str:
    """A token of an account without installation keys: it names the account signing key."""
    return token(mskid=mskid, **claims)


def ipk_token(ipk: str = APPROOV_TEST_IPK, **claims: Any) -> str:
    """A token of the dummy secret that carries an installation key."""
    return token(ipk=ipk, **claims)


class Headers(MutableMapping[str, str]):
    """Header fields by case-insensitive name, each name as first written."""

    def __init__(self) -> None:
        self._fields: dict[str, tuple[str, str]] = {}

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._fields[name.lower()] = (self._fields.get(name.lower(), (name, ""))[0], value)

    def __delitem__(self, name: str) -> None:
        del self._fields[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields


@dataclass
class Request:
    """A client's request, as the independent signer sees it."""

    method: str
    url: str
    headers: Headers = field(default_factory=Headers)
    body: bytes | None = None

    def header_pairs(self) -> list[tuple[bytes, bytes]]:
        return [(name.lower().encode(), value.encode()) for name, value in self.headers.items()]

    def as_forwarded(self, body: bool = False) -> ClientRequest:
        """The request as a proxy that tells authsvc everything would describe it."""
        fields = {name.lower(): (value.encode(),) for name, value in self.headers.items()}
        return ClientRequest(self.method, self.url, fields, self.body if body else None)


def request(
    method: str = "GET",
    url: str = "https://api.example.com/v1/shapes?colour=red",
    *,
    token_value: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
) -> Request:
    signed = Request(method, url, Headers(), body)
    signed.headers["Approov-Token"] = token_value if token_value is not None else ipk_token()
    if body is not None:
        signed.headers["Content-Length"] = str(len(body))
    for name, value in headers:
        signed.headers[name] = value
    return signed


def sign(
    message: Request,
    *,
    components: Sequence[str] = SDK_COMPONENTS,
    created: float | None = None,
    lifetime: float | None = SDK_LIFETIME_SECONDS,
    label: str = "install",
    key: ec.EllipticCurvePrivateKey = TEST_KEY,
    account_key: bytes = TEST_ACCOUNT_KEY,
    string_form: bool = False,
    append: bool = False,
) -> Request:
    """Sign `message` in place as an Approov SDK would: label `install` (ECDSA P-256 with
    `key`) or `account` (HMAC-SHA256 with `account_key`), `created`, `expires` after
    `lifetime` seconds, a Content-Digest (covered) when it has a body. `append`: beside a
    signature already there, as okhttp sends both. `string_form`: every Signature member as a
    string, as the okhttp service 3.5.2 to 3.5.7 sends it."""
    now = created if created is not None else datetime.datetime.now(datetime.UTC).timestamp()
    created_at = datetime.datetime.fromtimestamp(int(now), datetime.UTC)
    algorithm, signing_key = (
        (algorithms.HMAC_SHA256, account_key)
        if label == "account"
        else (algorithms.ECDSA_P256_SHA256, key)
    )
    signer = HTTPMessageSigner(
        signature_algorithm=algorithm,
        key_resolver=MappingKeyResolver(
            public_keys={}, private_keys={f"test-{label}": signing_key}
        ),
    )
    signer.sign(
        message,
        key_id=f"test-{label}",
        created=created_at,
        expires=None if lifetime is None else created_at + datetime.timedelta(seconds=lifetime),
        label=label,
        covered_component_ids=list(components),
        body=message.body,
        use_existing_digest="Content-Digest" in message.headers,
        append_if_signature_exists=append,
    )
    if string_form:
        message.headers["Signature"] = re.sub(
            r"=:([A-Za-z0-9+/=]*):", r'="\1"', message.headers["Signature"]
        )
    return message


def signed_post(
    body: bytes,
    url: str = "https://api.example.com/v1/shapes?colour=red",
    *,
    token_value: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    components: Sequence[str] = SDK_COMPONENTS,
    created: float | None = None,
) -> Request:
    """A POST of `body` signed as the SDKs sign one (its Content-Digest covered)."""
    message = request("POST", url, token_value=token_value, headers=headers, body=body)
    return sign(message, components=components, created=created)


def sign_by_hand(
    message: Request,
    components: Sequence[str],
    *,
    created: float,
    key: ec.EllipticCurvePrivateKey = TEST_KEY,
) -> Request:
    """Sign `message` from a base written out here, line by line (RFC 9421 2.5), for what the
    independent signer refuses to sign (a digest it does not accept, say). Only header fields
    and @method/@target-uri."""
    params = "(" + " ".join(f'"{name}"' for name in components) + ")"
    params += f';created={int(created)};alg="ecdsa-p256-sha256"'
    lines = []
    for name in components:
        value = {"@method": message.method, "@target-uri": message.url}.get(name)
        lines.append(f'"{name}": {value if value is not None else message.headers[name]}')
    lines.append(f'"@signature-params": {params}')
    der = key.sign("\n".join(lines).encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32) + s.to_bytes(32)
    message.headers["Signature-Input"] = f"install={params}"
    message.headers["Signature"] = f"install=:{base64.b64encode(raw).decode()}:"
    return message
