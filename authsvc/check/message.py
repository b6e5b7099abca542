"""The client's request as message signing reads it (`ClientRequest`): its header fields by
name, and its URL split into scheme, authority and target."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# RFC 9110 5.5: whitespace around a field value is not part of it.
OPTIONAL_WHITESPACE = b" \t"
# scheme://authority, then the request target (path and query) as it was sent: on one line.
_URL = re.compile(r"(?P<scheme>[^:/?#]+)://(?P<authority>[^/?#]*)(?P<target>.*)\Z")


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """What authsvc knows of the client's request, from what the proxy forwarded."""

    method: str | None
    """None when the check's sources of it disagree (authsvc.check.origin)."""
    target_uri: str | None
    """scheme://authority/path?query as the client asked for it; None when the proxy did
    not say, or its sources disagree: every signed request is then denied."""
    fields: Mapping[str, tuple[bytes, ...]]
    """The client's header field lines by lower-case name, each value trimmed."""
    body: bytes | None = None
    """The client's body, when the proxy forwarded it whole (Envoy `with_request_body`)."""


def fields_by_name(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, tuple[bytes, ...]]:
    """Each header's values by lower-case name, in the order they came, trimmed."""
    lines: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        lines.setdefault(name.lower(), []).append(value.strip(OPTIONAL_WHITESPACE))
    return {name.decode("latin-1"): tuple(values) for name, values in lines.items()}


def split_url(url: str) -> tuple[str, str, str] | None:
    """The scheme, authority and target (path and query, perhaps empty) of an absolute URL;
    None when it is not one."""
    parts = _URL.match(url)
    return None if parts is None else (parts["scheme"], parts["authority"], parts["target"])
