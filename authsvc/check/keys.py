"""Verification keys: HS256 secrets, RSA/EC public keys (PEM) and JWKS, loaded at start-up.

The algorithms a token may use follow from these keys, never from the token. A JWKS URL is
fetched at start-up and then refreshed in the background, the last good set kept on failure.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from authsvc.check.jose import ES256, HS256, RS256
from authsvc.config import MIN_SECRET_BYTES, ConfigError, Settings, decode_secret

MIN_RSA_BITS = 2048
MAX_KEY_DOCUMENT_BYTES = 1 << 20
_JWK_ALGORITHM = {"oct": HS256, "RSA": RS256, "EC": ES256}

log = logging.getLogger("authsvc.check.keys")


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


def load_keys(settings: Settings) -> KeySet:
    """The static keys of `settings`: secrets, PEM public key, JWKS file.

    Raises one ConfigError listing every problem with them.
    """
    problems: list[str] = []
    keys: list[Key] = []
    secret = settings.secret
    if settings.secret_file is not None:
        text = _read(settings.secret_file, "APPROOV_BASE64_SECRET_FILE", problems)
        if text is not None:
            try:
                secret = decode_secret(text.decode("ascii", "replace"))
            except ValueError as error:
                problems.append(f"APPROOV_BASE64_SECRET_FILE {settings.secret_file}: {error}")
    if secret is not None:
        keys.append(Key(HS256, secret, "secret"))
    keys += [
        Key(HS256, secret, f"previous-secret-{number}")
        for number, secret in enumerate(settings.previous_secrets, start=1)
    ]
    if settings.public_key_file is not None:
        data = _read(settings.public_key_file, "APPROOV_PUBLIC_KEY_FILE", problems)
        if data is not None:
            try:
                keys.append(parse_pem(data))
            except ValueError as error:
                problems.append(f"APPROOV_PUBLIC_KEY_FILE {settings.public_key_file}: {error}")
    if settings.jwks_file is not None:
        data = _read(settings.jwks_file, "APPROOV_JWKS_FILE", problems)
        if data is not None:
            try:
                keys += parse_jwks(data)
            except ValueError as error:
                problems.append(f"APPROOV_JWKS_FILE {settings.jwks_file}: {error}")
    problems += _duplicate_kids(keys)
    if problems:
        raise ConfigError(problems)
    return KeySet(tuple(keys), secret)


def _read(path: Path, setting: str, problems: list[str]) -> bytes | None:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_KEY_DOCUMENT_BYTES + 1)
    except OSError as error:
        problems.append(f"{setting}: cannot read {path}: {error.strerror or error}")
        return None
    if len(data) > MAX_KEY_DOCUMENT_BYTES:
        problems.append(f"{setting}: {path} is larger than {MAX_KEY_DOCUMENT_BYTES} bytes")
        return None
    return data


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
    duplicates = _duplicate_kids(keys)
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


def _duplicate_kids(keys: Iterable[Key]) -> list[str]:
    kids = [key.kid for key in keys if key.kid is not None]
    return [
        f"key id {kid!r} is used by more than one key"
        for kid in sorted({kid for kid in kids if kids.count(kid) > 1})
    ]


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only within the configured URL's origin (scheme, host, port): a
    redirect elsewhere, an https-to-http downgrade included, would let another server choose
    the keys."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if _origin(newurl) != _origin(req.full_url):
            raise urllib.error.HTTPError(
                req.full_url, code, f"redirect to another origin refused: {newurl}", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)


_OPENER = urllib.request.build_opener(_SameOriginRedirects)


def fetch_url(url: str, timeout: float) -> bytes:
    with _OPENER.open(url, timeout=timeout) as response:
        data: bytes = response.read(MAX_KEY_DOCUMENT_BYTES + 1)
    if len(data) > MAX_KEY_DOCUMENT_BYTES:
        raise ValueError(f"larger than {MAX_KEY_DOCUMENT_BYTES} bytes")
    return data


def fetch_jwks(url: str, timeout: float, fetch: Callable[[str, float], bytes]) -> list[Key] | None:
    """The keys at `url`, or None (logged) when it cannot be fetched or parsed."""
    try:
        return parse_jwks(fetch(url, timeout))
    except (OSError, ValueError) as error:
        log.warning("JWKS %s not loaded: %s", url, error)
        return None


class KeySource:
    """The keys in use now: the static ones, plus the JWKS URL's, refreshed in the background.

    Readers take `current` once per token; a refresh swaps it whole, so a reader never sees
    half a key set.
    """

    def __init__(
        self,
        static: KeySet,
        *,
        jwks_url: str | None = None,
        refresh_seconds: float = 300,
        timeout_seconds: float = 5,
        fetch: Callable[[str, float], bytes] = fetch_url,
    ) -> None:
        self.current = static
        self._static = static
        self._jwks_url = jwks_url
        self._refresh_seconds = refresh_seconds
        self._timeout_seconds = timeout_seconds
        self._fetch = fetch
        self._url_loaded = jwks_url is None
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[KeySource], None]] = []
        self.loaded_at = time.time()
        self.last_load_ok = True
        """False after a failed JWKS refresh or a refused reload, until the next success."""

    @classmethod
    def from_settings(
        cls, settings: Settings, fetch: Callable[[str, float], bytes] = fetch_url
    ) -> KeySource:
        """Every configured key (ConfigError on bad files), the JWKS URL fetched once."""
        source = cls(
            load_keys(settings),
            jwks_url=settings.jwks_url,
            refresh_seconds=settings.jwks_refresh_seconds,
            timeout_seconds=settings.jwks_timeout_seconds,
            fetch=fetch,
        )
        source.refresh()
        return source

    @classmethod
    def of(cls, *keys: Key) -> KeySource:
        return cls(KeySet(keys))

    @property
    def ready(self) -> bool:
        """True when there is a key, and the JWKS URL (if any) has been loaded once."""
        return self._url_loaded and bool(self.current.keys)

    def refresh(self) -> bool:
        """Fetch the JWKS URL now; keep the last good keys when that fails."""
        if self._jwks_url is None:
            return True
        fetched = fetch_jwks(self._jwks_url, self._timeout_seconds, self._fetch)
        if fetched is None:
            return self._loaded(ok=False)
        from_url = tuple(
            Key(key.algorithm, key.material, key.label.replace("jwks:", "jwks-url:"), key.kid)
            for key in fetched
        )
        clashes = _duplicate_kids((*self._static.keys, *from_url))
        if clashes:
            log.warning("JWKS %s not loaded: %s", self._jwks_url, "; ".join(clashes))
            return self._loaded(ok=False)
        self.current = replace(self._static, keys=(*self._static.keys, *from_url))
        self._url_loaded = True
        self.loaded_at = time.time()
        return self._loaded(ok=True)

    def note_refused_reload(self) -> None:
        """A reload was refused: these keys stay, and the failure shows in the metrics."""
        self._loaded(ok=False)

    def on_load(self, listener: Callable[[KeySource], None]) -> None:
        """Call `listener` after every load attempt (JWKS refresh, refused reload)."""
        self._listeners.append(listener)

    def _loaded(self, *, ok: bool) -> bool:
        self.last_load_ok = ok
        for listener in self._listeners:
            listener(self)
        return ok

    def start_refreshing(self) -> None:
        """Refresh the JWKS URL in a daemon thread (nothing to do without one)."""
        if self._jwks_url is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._refresh_loop, name="jwks", daemon=True)
        self._thread.start()

    def _refresh_loop(self) -> None:
        # Until a first set is loaded, retry every second: the service is not ready meanwhile.
        # A daemon thread: it ends with its worker.
        while True:
            time.sleep(self._refresh_seconds if self._url_loaded else 1.0)
            self.refresh()
