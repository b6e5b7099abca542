"""What a request presents: its token header copies and its binding value, as raw bytes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from authsvc.check.message import OPTIONAL_WHITESPACE
from authsvc.policy import MAX_STATUS_NAME_BYTES, status_in_token_header


@dataclass(frozen=True, slots=True)
class Credentials:
    """The token and binding headers of one request, as received but for the surrounding
    whitespace that is not part of a field value."""

    tokens: tuple[bytes, ...]
    """Every copy of the token header, in order (several copies are a deny)."""
    binding_value: bytes | None
    """The binding headers' values concatenated in the configured order; None if one is absent."""
    binding_conflict: bool = False
    """A binding header came more than once with different values."""
    unprefixed: bool = False
    """A token header copy lacked the configured prefix: malformed, whatever follows."""


class CredentialReader:
    """Picks the token and binding headers out of a request's raw header list.

    Header names are normalised once here, so the per-request work is one pass over the
    headers with byte comparisons.
    """

    __slots__ = ("_binding_names", "_prefix", "_wanted", "names", "token_name")

    def __init__(
        self, token_header: str, binding_headers: Sequence[str], token_prefix: str
    ) -> None:
        self.names = (token_header, *binding_headers)
        """The headers read, as configured: an answer that may be cached varies by them."""
        # ASGI servers deliver header names lower-cased.
        self.token_name = token_header.lower().encode("ascii")
        self._binding_names = tuple(name.lower().encode("ascii") for name in binding_headers)
        self._wanted = frozenset((self.token_name, *self._binding_names))
        self._prefix = token_prefix.encode("ascii")

    def read(self, headers: Iterable[tuple[bytes, bytes]]) -> Credentials:
        tokens: list[bytes] = []
        unprefixed = False
        binding_copies: dict[bytes, set[bytes]] = {}
        for name, raw in headers:
            if name not in self._wanted:
                continue
            # gunicorn's parser trimmed whitespace around a value, httptools keeps it on the
            # right: read it the same whatever runs.
            value = raw.strip(OPTIONAL_WHITESPACE)
            if name == self.token_name:
                token = token_value(value, self._prefix)
                if token is None:  # kept as sent: not missing, malformed
                    unprefixed, token = True, value
                tokens.append(token)
            elif value:  # an empty binding header counts as absent
                binding_copies.setdefault(name, set()).add(value)

        conflict = any(len(copies) > 1 for copies in binding_copies.values())
        values: list[bytes] = []
        for name in self._binding_names:
            copies = binding_copies.get(name)
            if not copies:
                return Credentials(tuple(tokens), None, conflict, unprefixed)
            values.append(next(iter(copies)))
        return Credentials(tuple(tokens), b"".join(values), conflict, unprefixed)

    def fetch_status(self, token_header: bytes) -> str | None:
        """The fetch status an app put in its token header instead of a token, lower case."""
        return status_of_token_header(token_header, self._prefix)


def token_value(value: bytes, prefix: bytes) -> bytes | None:
    """The token in a (trimmed) token header value: after `prefix`, empty when there is none
    or the app put its fetch status there instead (`NO_NETWORK`); None without the prefix."""
    token = _after_prefix(value, prefix)
    if token is not None and fetch_status_in_token(token) is not None:
        return b""
    return token


def status_of_token_header(value: bytes, prefix: bytes) -> str | None:
    """The fetch status an app put in its token header instead of a token, lower case."""
    token = _after_prefix(value.strip(OPTIONAL_WHITESPACE), prefix)
    return None if token is None else fetch_status_in_token(token)


def fetch_status_in_token(token: bytes) -> str | None:
    if len(token) > MAX_STATUS_NAME_BYTES:  # a token: not hashed for the lookup
        return None
    return status_in_token_header(token)


def _after_prefix(value: bytes, prefix: bytes) -> bytes | None:
    if value.startswith(prefix):
        return value[len(prefix) :].strip(OPTIONAL_WHITESPACE)
    if value == prefix.rstrip(OPTIONAL_WHITESPACE) or not value:  # nothing after the prefix
        return b""
    return None
