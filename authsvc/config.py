"""Settings: built once at start-up from an environment mapping, validated all at once."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from authsvc.policy import BindingMode, SigningMode

# Approov's published dummy secret, for trying authsvc out; never used for a real app's tokens.
PUBLIC_DUMMY_SECRET_B64 = (
    "h+CX0tOzdAAR9l15bWAqvq7w9olk66daIH+Xk+IAHhVVHszjDzeGobzNnqyRze3lw/WVyWrc2gZfh3XXfBOmww=="
)
MIN_SECRET_BYTES = 32
MIN_ACCOUNT_KEY_BYTES = 16
MAX_LEEWAY_SECONDS = 300
# The SDKs sign with `expires` 15 s after `created`; a minute also bounds a signature without it.
DEFAULT_SIGNATURE_MAX_AGE_SECONDS = 60
# Where a verification key comes from: one of them is required to verify tokens.
KEY_SETTINGS = (
    "APPROOV_BASE64_SECRET",
    "APPROOV_BASE64_SECRET_FILE",
    "APPROOV_PUBLIC_KEY_FILE",
    "APPROOV_JWKS_FILE",
    "APPROOV_JWKS_URL",
)
DEFAULT_TOKEN_HEADER = "Approov-Token"
DEFAULT_BINDING_HEADERS: tuple[str, ...] = ("Authorization",)
DEFAULT_STATUS_HEADER = "Approov-Status"
REPLAY_STORE_MEMORY = "memory"
# Settings whose empty value is a value, not the default: an empty status header turns it off.
_EMPTY_MEANS_NONE = frozenset({"APPROOV_STATUS_HEADER"})
# Settings whose trailing space is part of the value: the token prefix `Bearer `.
_TRAILING_SPACE_KEPT = frozenset({"APPROOV_TOKEN_PREFIX"})

# RFC 9110 token characters: what a header field name may be made of.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_GRPC_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class ConfigError(Exception):
    """Every configuration problem found, so that one start-up attempt shows them all."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        count = len(self.problems)
        heading = f"configuration has {count} problem{'s' if count != 1 else ''}:"
        return "\n".join([heading, *(f"  - {problem}" for problem in self.problems)])


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The effective configuration. The secret never appears in `repr` or `summary`."""

    secret: bytes | None = field(default=None, repr=False)
    secret_file: Path | None = None
    previous_secrets: tuple[bytes, ...] = field(default=(), repr=False)
    public_key_file: Path | None = None
    jwks_file: Path | None = None
    jwks_url: str | None = None
    jwks_refresh_seconds: int = 300
    jwks_timeout_seconds: int = 5
    token_header: str = DEFAULT_TOKEN_HEADER
    binding_headers: tuple[str, ...] = DEFAULT_BINDING_HEADERS
    binding_mode: BindingMode = BindingMode.REQUIRED
    abort_on_invalid_token: bool = True
    abort_on_invalid_binding: bool = True
    logging_enabled: bool = True
    allow_status: int = 204
    leeway_seconds: int = 0
    verified_cache_size: int = 10_000
    issuer: str | None = None
    audience: str | None = None
    signing_mode: SigningMode = SigningMode.OFF
    signature_max_age_seconds: int = DEFAULT_SIGNATURE_MAX_AGE_SECONDS
    signature_clock_skew_seconds: int = 0
    abort_on_invalid_signature: bool = True
    public_base_url: str | None = None
    """scheme://authority of the URL clients call, when TLS ends in front of the proxy."""
    account_signing_key: bytes | None = field(default=None, repr=False)
    """The account's message signing key (HMAC-SHA256), for `account` signatures."""
    account_signing_key_file: Path | None = None
    account_signing_key_id: str | None = None
    """When set, the token's `mskid` must name it."""
    status_header: str | None = DEFAULT_STATUS_HEADER
    """Where the app reports its token fetch status; None: not read."""
    token_prefix: str = ""
    """What precedes the token in its header (`Bearer ` when the app moved it to Authorization)."""
    replay_store: str | None = None
    """Where single-use signatures are remembered: a redis://, rediss:// or unix:// URL, or
    `memory`; None: single-use routes deny."""
    replay_store_timeout_ms: int = 50
    grpc_bind: str | None = None
    """HOST:PORT where every worker also answers Envoy's gRPC ext_authz; None: HTTP only."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read every APPROOV_* setting from `env`; raise one ConfigError listing all problems.

        Key files are only named here, and a key is not required: the commands that verify
        tokens load keys (`authsvc.store.keysource`), which reports a missing one.
        """
        problems: list[str] = []
        values: dict[str, Any] = {}
        for name, field_name, parse in _FROM_ENV:
            raw = env.get(name, "")
            raw = raw.lstrip() if name in _TRAILING_SPACE_KEPT else raw.strip()
            if not raw.strip():
                if name in _EMPTY_MEANS_NONE and name in env:
                    values[field_name] = None
                continue  # the field's default
            try:
                values[field_name] = parse(raw)
            except ValueError as error:
                problems.append(f"{name}: {error}")
        settings = cls(**values)
        if settings.secret is not None and settings.secret_file is not None:
            problems.append(
                "APPROOV_BASE64_SECRET and APPROOV_BASE64_SECRET_FILE are both set; keep one"
            )
        if settings.account_signing_key is not None and settings.account_signing_key_file:
            problems.append(
                "APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET and"
                " APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET_FILE are both set; keep one"
            )
        binding = {name.lower() for name in settings.binding_headers}
        if settings.token_prefix and settings.token_header.lower() in binding:
            problems.append(
                f"APPROOV_TOKEN_PREFIX: the token header {settings.token_header!r} is also a"
                " binding header (APPROOV_TOKEN_BINDING_HEADER); the app binds its token to"
                " another header: name that one"
            )
        elif settings.token_header.lower() in binding:
            problems.append(
                "APPROOV_TOKEN_BINDING_HEADER: must not include the token header"
                f" {settings.token_header!r}; a token cannot be bound to itself"
            )
        if problems:
            raise ConfigError(problems)
        return settings

    def summary(self) -> str:
        """One line with the effective settings; secrets only as their length and fingerprint."""
        monitor = [
            name
            for name, aborts in (
                ("token", self.abort_on_invalid_token),
                ("binding", self.abort_on_invalid_binding),
                ("signature", self.abort_on_invalid_signature),
            )
            if not aborts
        ]
        sources = [
            *([f"secret({describe_secret(self.secret)})"] if self.secret else []),
            *([f"secret-file({self.secret_file})"] if self.secret_file else []),
            *(f"previous-secret({describe_secret(s)})" for s in self.previous_secrets),
            *([f"public-key({self.public_key_file})"] if self.public_key_file else []),
            *([f"jwks-file({self.jwks_file})"] if self.jwks_file else []),
            *(
                [
                    f"jwks-url({redacted_url(self.jwks_url)}, every {self.jwks_refresh_seconds}s,"
                    " same-origin redirects only, at most 1 MiB)"
                ]
                if self.jwks_url
                else []
            ),
        ]
        parts = [
            f"keys={'+'.join(sources)}",
            f"token_header={self.token_header}",
            f"binding={self.binding_mode} on {'+'.join(self.binding_headers)}",
            f"signing={self.signing_mode} (max age {self.signature_max_age_seconds}s,"
            f" skew {self.signature_clock_skew_seconds}s,"
            f" url {self.public_base_url or 'from the proxy'},"
            f" account key {self._account_key_source()})",
            f"status_header={self.status_header or 'off'}",
            f"replay_store={self._replay_store_description()}",
            f"token_prefix={self.token_prefix!r}",
            f"monitor={','.join(monitor) or 'off'}",
            # Envoy (Istio, Envoy Gateway) allows on 200 alone; authsvc knows its checks.
            f"allow_status={self.allow_status}(envoy:200)",
            f"leeway={self.leeway_seconds}s",
            f"cache={self.verified_cache_size}",
            f"issuer={self.issuer or '-'}",
            f"audience={self.audience or '-'}",
            f"logging={'on' if self.logging_enabled else 'off'}",
            f"grpc={self.grpc_bind or 'off'}",
        ]
        return "ok: " + " ".join(parts)

    def _replay_store_description(self) -> str:
        if self.replay_store is None:
            return "none (single-use routes deny)"
        if self.replay_store == REPLAY_STORE_MEMORY:
            return "memory (this process only: each worker and replica accepts a signature once)"
        return f"{redacted_url(self.replay_store)} (timeout {self.replay_store_timeout_ms}ms)"

    def _account_key_source(self) -> str:
        if self.account_signing_key is not None:
            described = describe_secret(self.account_signing_key)
        elif self.account_signing_key_file is not None:
            described = f"file {self.account_signing_key_file}"
        else:
            return "none"
        key_id = self.account_signing_key_id
        return described + (f", mskid {key_id!r}" if key_id else ", any mskid")


def describe_secret(secret: bytes) -> str:
    """A secret's length and a short non-reversible fingerprint, to tell secrets apart."""
    return f"{len(secret)} bytes, sha256:{hashlib.sha256(secret).hexdigest()[:12]}"


def decode_secret(raw: str) -> bytes:
    """An HS256 secret from base64 (standard or url-safe, padding optional, whitespace ignored)."""
    compact = "".join(raw.split())
    padded = compact + "=" * (-len(compact) % 4)
    alphabet = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        secret = base64.b64decode(padded, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "is not valid base64; paste the value exactly as `approov secret -get base64` prints it"
        ) from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"decodes to {len(secret)} bytes; an HS256 secret must be at least"
            f" {MIN_SECRET_BYTES} bytes"
        )
    return secret


def decode_account_key(raw: str) -> bytes:
    """The account's message signing key as `approov secret -messageSigningKey get-base64url`
    prints it (base64url, padded or not), or standard base64; strictly nothing else."""
    unpadded = raw.rstrip("=")
    url_safe, standard = set(unpadded) & set("-_"), set(unpadded) & set("+/")
    padding = len(raw) - len(unpadded)
    try:
        if (url_safe and standard) or len(unpadded) % 4 == 1 or padding > 2:
            raise ValueError
        if padding and (len(unpadded) + padding) % 4:
            raise ValueError
        key = base64.b64decode(
            unpadded + "=" * (-len(unpadded) % 4),
            altchars=b"-_" if url_safe else None,
            validate=True,
        )
    except (binascii.Error, ValueError):
        raise ValueError(
            "is not base64url (or base64); paste the key line exactly as `approov secret"
            " -messageSigningKey get-base64url` prints it"
        ) from None
    if len(key) < MIN_ACCOUNT_KEY_BYTES:
        raise ValueError(
            f"decodes to {len(key)} bytes; an account message signing key is at least"
            f" {MIN_ACCOUNT_KEY_BYTES} bytes"
        )
    return key


def _parse_replay_store(raw: str) -> str:
    if raw == REPLAY_STORE_MEMORY or urlsplit(raw).scheme in {"redis", "rediss", "unix"}:
        return raw
    raise ValueError(
        f"{redacted_url(raw)!r} is not a redis://, rediss:// or unix:// URL, nor `memory`"
    )


def _parse_token_prefix(raw: str) -> str:
    if not raw.isascii() or not raw.isprintable():
        raise ValueError(f"{raw!r} is not printable ASCII")
    return raw


def _parse_secret_list(raw: str) -> tuple[bytes, ...]:
    return tuple(decode_secret(part) for part in raw.split(",") if part.strip())


def _parse_jwks_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{redacted_url(raw)!r} is not an https URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            f"{redacted_url(raw)!r} is plain http: anyone on the path could replace the keys;"
            " use https (plain http is accepted only to a loopback address, for tests)"
        )
    return raw


def redacted_url(url: str) -> str:
    """`url` fit to print: a key service's URL may carry a secret as `user:password@` or as a
    query value (`?api_key=…`), so those are replaced by `***`, as is a fragment."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{item.partition('=')[0]}=***" if "=" in item else "***" if item else ""
        for item in parts.query.split("&")
    )
    return (
        f"{parts.scheme}://{netloc}{parts.path}"
        + (f"?{query}" if parts.query else "")
        + ("#***" if parts.fragment else "")
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _whole_number(low: int, high: int, advice: str = "") -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
            raise ValueError(f"{raw!r} is not a whole number from {low} to {high}{advice}")
        return int(raw)

    return parse


def parse_header_name(raw: str) -> str:
    if not _HEADER_NAME.fullmatch(raw):
        raise ValueError(f"{raw!r} is not a valid HTTP header name")
    return raw


def parse_header_list(raw: str) -> tuple[str, ...]:
    names = tuple(parse_header_name(part.strip()) for part in raw.split(","))
    lowered = [name.lower() for name in names]
    if len(set(lowered)) != len(lowered):
        raise ValueError(f"{raw!r} names the same header twice")
    return names


def _parse_bool(raw: str) -> bool:
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{raw!r} is not a boolean; use true or false")


_Mode = TypeVar("_Mode", BindingMode, SigningMode)


def _one_of(modes: type[_Mode]) -> Callable[[str], _Mode]:
    def parse(raw: str) -> _Mode:
        try:
            return modes(raw.lower())
        except ValueError:
            choices = ", ".join(mode.value for mode in modes)
            raise ValueError(f"{raw!r} is not one of {choices}") from None

    return parse


def _parse_public_base_url(raw: str) -> str:
    parts = urlsplit(raw)
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.username is not None
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
        or raw.endswith(("?", "#"))
    ):
        raise _not_a_base_url(raw)
    try:
        port = parts.port
    except ValueError:
        raise _not_a_base_url(raw) from None
    # Normalised as the SDKs sign a URL (RFC 3986 6.2.3): lower-case host, no default port.
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")


def _not_a_base_url(raw: str) -> ValueError:
    return ValueError(
        f"{raw!r} is not a base URL like https://api.example.com (scheme and host, with"
        " a port if not the default; no path)"
    )


def parse_grpc_bind(raw: str) -> str:
    """HOST:PORT, HOST an IPv4 address, a name or a bracketed IPv6 address; no port 0: every
    worker listens on the same port (SO_REUSEPORT), an ephemeral one would differ per worker."""
    host, _, port = raw.rpartition(":")
    if not _GRPC_HOST.fullmatch(host) or not port.isascii() or not port.isdigit():
        raise ValueError(f"{raw!r} is not HOST:PORT (e.g. 127.0.0.1:8003 or [::1]:8003)")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"{raw!r}: the port must be from 1 to 65535")
    return raw


def _parse_allow_status(raw: str) -> int:
    if raw not in {"200", "204"}:
        raise ValueError(f"{raw!r} is not 200 or 204")
    return int(raw)


# Every setting: its environment variable, the Settings field it fills, and how its text is
# read. The defaults are the fields' own (above); an empty value means the default.
_FROM_ENV: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("APPROOV_BASE64_SECRET", "secret", decode_secret),
    ("APPROOV_BASE64_SECRET_FILE", "secret_file", Path),
    ("APPROOV_BASE64_SECRET_PREVIOUS", "previous_secrets", _parse_secret_list),
    ("APPROOV_PUBLIC_KEY_FILE", "public_key_file", Path),
    ("APPROOV_JWKS_FILE", "jwks_file", Path),
    ("APPROOV_JWKS_URL", "jwks_url", _parse_jwks_url),
    ("APPROOV_JWKS_REFRESH_SECONDS", "jwks_refresh_seconds", _whole_number(10, 86400)),
    ("APPROOV_JWKS_TIMEOUT_SECONDS", "jwks_timeout_seconds", _whole_number(1, 60)),
    ("APPROOV_TOKEN_HEADER", "token_header", parse_header_name),
    ("APPROOV_TOKEN_BINDING_HEADER", "binding_headers", parse_header_list),
    ("APPROOV_TOKEN_BINDING", "binding_mode", _one_of(BindingMode)),
    ("APPROOV_ABORT_REQUEST_ON_INVALID_TOKEN", "abort_on_invalid_token", _parse_bool),
    ("APPROOV_ABORT_REQUEST_ON_INVALID_TOKEN_BINDING", "abort_on_invalid_binding", _parse_bool),
    ("APPROOV_LOGGING_ENABLED", "logging_enabled", _parse_bool),
    ("APPROOV_ALLOW_STATUS", "allow_status", _parse_allow_status),
    (
        "APPROOV_LEEWAY_SECONDS",
        "leeway_seconds",
        _whole_number(0, MAX_LEEWAY_SECONDS, "; fix the clock (NTP) rather than widen it"),
    ),
    ("APPROOV_VERIFIED_CACHE_SIZE", "verified_cache_size", _whole_number(0, 1_000_000)),
    ("APPROOV_ISSUER", "issuer", str),
    ("APPROOV_AUDIENCE", "audience", str),
    ("APPROOV_MESSAGE_SIGNING", "signing_mode", _one_of(SigningMode)),
    (
        "APPROOV_SIGNATURE_MAX_AGE_SECONDS",
        "signature_max_age_seconds",
        _whole_number(1, 86400),
    ),
    (
        "APPROOV_SIGNATURE_CLOCK_SKEW_SECONDS",
        "signature_clock_skew_seconds",
        _whole_number(0, MAX_LEEWAY_SECONDS, "; fix the clock (NTP) rather than widen it"),
    ),
    (
        "APPROOV_ABORT_REQUEST_ON_INVALID_MESSAGE_SIGNATURE",
        "abort_on_invalid_signature",
        _parse_bool,
    ),
    ("APPROOV_PUBLIC_BASE_URL", "public_base_url", _parse_public_base_url),
    ("APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET", "account_signing_key", decode_account_key),
    ("APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET_FILE", "account_signing_key_file", Path),
    ("APPROOV_ACCOUNT_MESSAGE_SIGNING_KEY_ID", "account_signing_key_id", str),
    ("APPROOV_STATUS_HEADER", "status_header", parse_header_name),
    ("APPROOV_TOKEN_PREFIX", "token_prefix", _parse_token_prefix),
    ("APPROOV_REPLAY_STORE", "replay_store", _parse_replay_store),
    ("APPROOV_REPLAY_STORE_TIMEOUT_MS", "replay_store_timeout_ms", _whole_number(1, 10_000)),
    ("APPROOV_GRPC_BIND", "grpc_bind", parse_grpc_bind),
)
