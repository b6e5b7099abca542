"""Strict compact JWS (RFC 7515), taken apart and NOT verified: structure, base64url, JSON,
header parameters. authsvc.check.verify decides what the parts mean; PyJWT's algorithm objects check
the signature over the bytes parsed here.

Stricter than PyJWT's own decoding on purpose (docs/reason-codes.md): one spelling per
token, no duplicate keys, no byte order mark, no header that changes processing.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The JWA algorithms authsvc verifies (RFC 7518): HMAC, RSA PKCS#1 v1.5 and ECDSA P-256, SHA-256.
HS256, RS256, ES256 = "HS256", "RS256", "ES256"
# Compact JWS: three non-empty base64url segments, no padding, nothing else.
_COMPACT_JWS = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# Header parameters that change how a token is processed or make the verifier fetch keys.
_FORBIDDEN_HEADER_PARAMETERS = frozenset({"crit", "b64", "jku", "x5u", "jwk", "x5c"})
_BASE64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_URL_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# Canonical base64url: a segment of 4n+2 (4n+3) characters ends in one whose 4 (2) low bits,
# left over after the last byte, are zero. Keyed on the segment's length mod 4; 4n+1 is none.
_CANONICAL_LAST = {
    0: frozenset(_BASE64URL),
    2: frozenset(c for i, c in enumerate(_BASE64URL) if i & 0b1111 == 0),
    3: frozenset(c for i, c in enumerate(_BASE64URL) if i & 0b11 == 0),
}
_PADDING = {0: b"", 2: b"==", 3: b"="}
# The headers seen, decoded: an issuer's tokens share one header segment per key, so most
# tokens skip its base64 and JSON. Only well-formed headers are kept, and a few at most.
_HEADERS_KEPT = 64
_headers: dict[bytes, dict[str, Any]] = {}


class Malformed(ValueError):
    """The token is not a strict compact JWS; the message says why."""


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A strict compact JWS taken apart; nothing in it is verified yet."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse_compact_jws(token: bytes) -> ParsedToken:
    """Take a strict compact JWS apart (NOT verifying it); Malformed says what is wrong."""
    if not _COMPACT_JWS.fullmatch(token):
        raise Malformed(
            "not three non-empty base64url segments joined by dots (no padding, spaces or prefix)"
        )
    signing_input, signature_segment = token.rsplit(b".", 1)
    header_segment, payload_segment = signing_input.split(b".")
    return ParsedToken(
        header=_decode_header(header_segment),
        claims=_decode_json_object(_decode_segment(payload_segment, "payload"), "payload"),
        signing_input=signing_input,
        signature=_decode_segment(signature_segment, "signature"),
    )


def _decode_header(segment: bytes) -> dict[str, Any]:
    known = _headers.get(segment)
    if known is None:
        known = _decode_json_object(_decode_segment(segment, "header"), "header")
        if len(_headers) >= _HEADERS_KEPT:
            _headers.clear()
        _headers[segment] = known
    return dict(known)  # a copy: what the caller does with it never reaches the next token


def _decode_segment(segment: bytes, name: str) -> bytes:
    """`segment` (base64url characters only: the caller's pattern) decoded."""
    canonical_last = _CANONICAL_LAST.get(len(segment) % 4)
    if canonical_last is None:  # 4n+1 characters: no byte ends there
        raise Malformed(f"the {name} is not base64url")
    # Only the canonical encoding: no stray trailing bits that make two spellings of one token.
    if segment[-1] not in canonical_last:
        raise Malformed(f"the {name} is not canonical base64url")
    return binascii.a2b_base64(segment.translate(_URL_TO_STANDARD) + _PADDING[len(segment) % 4])


def _decode_json_object(raw: bytes, name: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        if text.startswith("\ufeff"):
            raise Malformed(f"the {name} starts with a byte order mark")
        value = _STRICT_JSON.decode(text)
    except Malformed:
        raise
    except (ValueError, RecursionError) as error:
        raise Malformed(f"the {name} is not UTF-8 JSON: {error}") from None
    if not isinstance(value, dict):
        raise Malformed(f"the {name} is not a JSON object")
    return value


# The names tokens use (RFC 7515, RFC 7519, Approov's claims), kept once: each cached verdict
# holds its claims, and a name parsed anew is a new string per token (~50 bytes each).
_NAMES = {
    name: name
    for name in (
        *("alg", "typ", "kid"),
        *("exp", "nbf", "iat", "iss", "aud", "sub", "jti"),
        *("did", "pay", "ip", "ipk", "mskid", "arc"),
    )
}


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = {_NAMES.get(name, name): value for name, value in pairs}
    if len(result) != len(pairs):
        raise ValueError("a key appears twice")
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads would build a decoder with these hooks on every call.
_STRICT_JSON = json.JSONDecoder(
    object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
)


def check_header(header: Mapping[str, Any]) -> None:
    """Raise Malformed for header parameters authsvc refuses (the `alg` is the rules' call)."""
    forbidden = _FORBIDDEN_HEADER_PARAMETERS.intersection(header)
    if forbidden:
        raise Malformed(f"the header has {', '.join(sorted(forbidden))}, which authsvc refuses")
    if not isinstance(header.get("kid", ""), str):  # RFC 7515 4.1.4: a string
        raise Malformed("the header's kid is not a string")
