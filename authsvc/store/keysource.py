"""Where the verification keys come from: the files and secrets of the settings, loaded at
start-up, and a JWKS URL fetched at start-up and refreshed in the background, the last good set
kept on failure (KeySource)."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from http.client import HTTPMessage
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from authsvc.check.jose import HS256
from authsvc.check.keys import Key, KeySet, duplicate_kids, parse_jwks, parse_pem
from authsvc.config import (
    ConfigError,
    Settings,
    decode_account_key,
    decode_secret,
    redacted_url,
)

MAX_KEY_DOCUMENT_BYTES = 1 << 20

log = logging.getLogger(__name__)


def load_keys(settings: Settings) -> KeySet:
    """The static keys of `settings`: secrets, PEM public key, JWKS file.

    Raises one ConfigError listing every problem with them.
    """
    problems: list[str] = []
    if not (
        settings.secret
        or settings.secret_file
        or settings.public_key_file
        or settings.jwks_file
        or settings.jwks_url
    ):
        problems.append(
            "no verification key: set APPROOV_BASE64_SECRET to the secret that"
            " `approov secret -get base64` prints (or APPROOV_BASE64_SECRET_FILE,"
            " APPROOV_PUBLIC_KEY_FILE, APPROOV_JWKS_FILE, APPROOV_JWKS_URL)"
        )
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
    problems += duplicate_kids(keys)
    if problems:
        raise ConfigError(problems)
    return KeySet(tuple(keys), secret)


def load_account_signing_key(settings: Settings) -> bytes | None:
    """The account's message signing key, from the setting or its file (read again on each
    load, so a HUP reload picks up a rotated key); a ConfigError says what is wrong."""
    path = settings.account_signing_key_file
    if path is None:
        return settings.account_signing_key
    setting = "APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET_FILE"
    problems: list[str] = []
    data = _read(path, setting, problems)
    if data is not None:
        try:
            return decode_account_key(data.decode("ascii", "replace").strip())
        except ValueError as error:
            problems.append(f"{setting} {path}: {error}")
    raise ConfigError(problems)


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
            refusal = f"redirect to another origin refused: {redacted_url(newurl)}"
            raise urllib.error.HTTPError(req.full_url, code, refusal, headers, fp)
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
        log.warning("JWKS %s not loaded: %s", redacted_url(url), error)
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
        clashes = duplicate_kids((*self._static.keys, *from_url))
        if clashes:
            log.warning("JWKS %s not loaded: %s", redacted_url(self._jwks_url), "; ".join(clashes))
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
