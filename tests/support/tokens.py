"""Test tokens built by hand (hmac + base64), independently of the code under test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from authsvc.check.jose import HS256
from authsvc.check.keys import Key, KeySet
from authsvc.check.verify import Verifier
from authsvc.config import PUBLIC_DUMMY_SECRET_B64
from authsvc.store.keysource import KeySource

DUMMY_SECRET_B64 = PUBLIC_DUMMY_SECRET_B64

DUMMY_SECRET = base64.b64decode(DUMMY_SECRET_B64)
OTHER_SECRET = hashlib.sha512(b"another account's secret").digest()
HS256_HEADER = {"alg": "HS256", "typ": "JWT"}


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def pay_for(binding_value: bytes) -> str:
    """`pay` as Approov computes it: standard base64, padded, of sha256 of the value."""
    return base64.b64encode(hashlib.sha256(binding_value).digest()).decode("ascii")


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def sign(
    header: dict[str, Any] | bytes,
    payload: dict[str, Any] | bytes,
    secret: bytes = DUMMY_SECRET,
    digest: str = "sha256",
) -> str:
    """A compact JWS over the given header and payload (dicts, or raw bytes as-is)."""
    header_bytes = header if isinstance(header, bytes) else json_bytes(header)
    payload_bytes = payload if isinstance(payload, bytes) else json_bytes(payload)
    signing_input = b64url(header_bytes) + b"." + b64url(payload_bytes)
    signature = hmac.new(secret, signing_input, digest).digest()
    return (signing_input + b"." + b64url(signature)).decode("ascii")


def token(
    secret: bytes = DUMMY_SECRET,
    header: dict[str, Any] | None = None,
    ttl: float = 300,
    **claims: Any,
) -> str:
    """A valid Approov-shaped token: `exp` in `ttl` seconds unless given in `claims`."""
    body: dict[str, Any] = {"exp": int(time.time() + ttl), **claims}
    return sign(header or HS256_HEADER, body, secret)


def bound_token(binding_value: bytes = b"Bearer abc", **claims: Any) -> str:
    return token(pay=pay_for(binding_value), **claims)


def secret_keys(secret: bytes = DUMMY_SECRET) -> KeySource:
    """One HS256 secret, labelled as a configured secret is."""
    return key_source(Key(HS256, secret, "secret"))


def key_source(*keys: Key) -> KeySource:
    """Keys as the verifier reads them in a server, fixed (no files, no JWKS URL)."""
    return KeySource(KeySet(keys))


def secret_verifier(secret: bytes = DUMMY_SECRET, **options: Any) -> Verifier:
    """The rules for one HS256 secret (no cache)."""
    return Verifier(secret_keys(secret), **options)
