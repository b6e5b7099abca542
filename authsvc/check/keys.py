"""Verification keys: what a key is, parsed from bytes (an HS256 secret, an RSA or EC public
key in PEM, a JWKS document), and the set the verifier checks with.

The algorithms a token may use follow from these keys, never from the token. Where keys come
from (files, a JWKS URL refreshed in the background) is authsvc.store.keysource's; the check
reads them through a `KeyProvider`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from authsvc.check.jose import ES256, HS256, RS256
from authsvc.config import MIN_SECRET_BYTES

MIN_RSA_BITS = 2048
_JWK_ALGORITHM = {"oct": HS256, "RSA": RS256, "EC": ES256}


@dataclass(frozen=True, slots=True)
class Key:
    algorithm: str
    material: Any = field(repr=False)
    """bytes for HS256, a cryptography public key for RS256 and ES256."""
    label: str
    """Names the key in logs, never reveals it: "secret", "previous-secret-1", "jwks:<kid>"."""
    kid: str | None = None


@dataclass(frozen=True, slots=True)
class KeySet:
    keys: tuple[Key, ...] = ()
    secret: bytes | None = field(default=None, repr=False)
    """The configured current HS256 secret (not a previous one): what `authsvc token` signs with."""
    # Derived once: a key set never changes, and these are read for every token.
    algorithms: frozenset[str] = field(init=False)
    _by_algorithm: dict[str, tuple[Key, ...]] = field(init=False, repr=False)
    _has_kids: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        algorithms = frozenset(key.algorithm for key in self.keys)
        by_algorithm = {
            name: tuple(key for key in self.keys if key.algorithm == name) for name in algorithms
        }
        object.__setattr__(self, "algorithms", algorithms)
        object.__setattr__(self, "_by_algorithm", by_algorithm)
        object.__setattr__(self, "_has_kids", any(key.kid is not None for key in self.keys))

    def candidates(self, algorithm: str, kid: object) -> tuple[Key, ...] | None:
        """The keys to try for a token; None when its `kid` names no key we have.

        `kid` selects a key only among keys that have ids; without a `kid` (or when no key has
        one) every key of the token's algorithm is tried.
        """
        of_algorithm = self._by_algorithm.get(algorithm, ())
        if kid is None or not self._has_kids:
            return of_algorithm
        named = tuple(key for key in of_algorithm if key.kid == kid)
        return named or None

    def describe(self) -> str:
        return ", ".join(key.label for key in self.keys) or "none"


class KeyProvider(Protocol):
    """The keys in use now (a KeySource): read once per token, swapped whole on a reload."""

    @property
    def current(self) -> KeySet: ...

    @property
    def ready(self) -> bool: ...


def parse_pem(data: bytes) -> Key:
    """An RSA (>= 2048 bits) or EC P-256 public key in PEM."""
    try:
        public_key = load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ValueError("is not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    return Key(_algorithm_of(public_key), public_key, "public-key")


def _algorithm_of(public_key: object) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise ValueError(
                f"RSA key of {public_key.key_size} bits; at least {MIN_RSA_BITS} are required"
            )
        return RS256
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise ValueError(f"EC key on {public_key.curve.name}; only P-256 (ES256) is supported")
        return ES256
    raise ValueError(f"{type(public_key).__name__} keys are not supported; use RSA or EC P-256")


def parse_jwks(data: bytes) -> list[Key]:
    """The signing keys of a JWKS document; any key that is not fit for use is an error."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('is not a JWKS document ({"keys": [...]})')
    keys = [_parse_jwk(entry, index) for index, entry in enumerate(document["keys"])]
    if not keys:
        raise ValueError("holds no keys")
    duplicates = duplicate_kids(keys)
    if duplicates:
        raise ValueError("; ".join(duplicates))
    return keys


def _parse_jwk(entry: object, index: int) -> Key:
    where = f"key {index}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not an object")
    kid = entry.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise ValueError(f"{where}: kid must be a string")
    where = f"key {kid!r}" if kid else where
    algorithm = _JWK_ALGORITHM.get(str(entry.get("kty")))
    if algorithm is None:
        raise ValueError(f"{where}: kty {entry.get('kty')!r} is not oct, RSA or EC")
    if entry.get("alg", algorithm) != algorithm:
        raise ValueError(f"{where}: alg {entry.get('alg')!r} does not fit kty {entry['kty']}")
    if entry.get("use", "sig") != "sig":
        raise ValueError(f"{where}: use {entry.get('use')!r} is not sig")
    if algorithm != HS256 and "d" in entry:
        raise ValueError(f"{where} is a private key; publish only the public part")
    try:
        material = jwt.PyJWK(entry, algorithm).key
    except jwt.PyJWTError as error:
        raise ValueError(f"{where}: {error}") from None
    if algorithm == HS256:
        if len(material) < MIN_SECRET_BYTES:
            raise ValueError(f"{where}: an HS256 key must be at least {MIN_SECRET_BYTES} bytes")
    else:
        try:
            _algorithm_of(material)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    return Key(algorithm, material, f"jwks:{kid or index}", kid)


def duplicate_kids(keys: Iterable[Key]) -> list[str]:
    kids = [key.kid for key in keys if key.kid is not None]
    return [
        f"key id {kid!r} is used by more than one key"
        for kid in sorted({kid for kid in kids if kids.count(kid) > 1})
    ]
