"""What a proxy says of the client's request, read from the check request it sends authsvc.

Each shipped proxy configuration sets these itself and never passes a client's copy through
(README, "ClientRequest signing"), so they are the proxy's word, not the client's:

- method: `X-Original-Method` (nginx, ingress-nginx), else `X-Forwarded-Method` (Caddy,
  Traefik), else the check's own method (Envoy keeps the client's);
- the whole URL: ingress-nginx's `X-Original-URL` (the shipped nginx include blanks it);
- else path and query, raw: `X-Original-URI` (nginx), else `X-Forwarded-Uri` (Caddy,
  Traefik), else what follows the policy in the check's own path (Envoy's `path_prefix`), with
  scheme and authority from `X-Forwarded-Proto` and `X-Forwarded-Host` (nginx, Caddy, Traefik;
  Envoy sets the former itself) or the check's `Host` (Envoy keeps the client's authority);
- APPROOV_PUBLIC_BASE_URL, when set (TLS ends in front of the proxy), replaces the scheme and
  the authority;
- the length of the client's body: `X-Original-Content-Length` (nginx, Caddy), or the length
  of the body itself when the proxy forwarded it (Envoy `with_request_body`).

A header sent twice or a value that is not a URL part leaves the URL unknown: every signed
request is then denied as `message_target_unknown`, never checked against a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from authsvc.signing import ClientRequest

ORIGINAL_METHOD_HEADERS = (b"x-original-method", b"x-forwarded-method")
ORIGINAL_URL_HEADER = b"x-original-url"
ORIGINAL_TARGET_HEADERS = (b"x-original-uri", b"x-forwarded-uri")
ORIGINAL_LENGTH_HEADER = b"x-original-content-length"

_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")
# RFC 3986 authority without userinfo: reg-name or IP literal, optional port.
_AUTHORITY = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(?::[0-9]*)?")
_REQUEST_TARGET = re.compile(r"/[\x21-\x7e]*")
_URL = re.compile(r"(?P<scheme>[^:/?#]+)://(?P<authority>[^/?#]*)(?P<target>/.*)", re.DOTALL)
_OPTIONAL_WHITESPACE = b" \t"


class ClientRequestReader:
    """Builds the signing `ClientRequest` of a check request; the base URL is decided once."""

    __slots__ = ("_public_base_url",)

    def __init__(self, public_base_url: str | None) -> None:
        self._public_base_url = public_base_url

    def read(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        *,
        method: str,
        client_target: bytes | None,
        body: bytes | None,
    ) -> ClientRequest:
        """`client_target`: the raw path and query a path-appending proxy (Envoy) put after
        the policy; `body`: the client's body, when the proxy forwarded it (a body Envoy cut
        at its limit fails its digest, as it should)."""
        lines: dict[bytes, list[bytes]] = {}
        for name, value in headers:
            lines.setdefault(name, []).append(value.strip(_OPTIONAL_WHITESPACE))
        fields = {name.decode("latin-1"): tuple(values) for name, values in lines.items()}
        # The check's own Content-Length is the check's (0, or absent), never the client's.
        fields.pop("content-length", None)
        # Empty when the client sent none (Caddy sets the header all the same).
        length = [value for value in lines.get(ORIGINAL_LENGTH_HEADER, ()) if value]
        if length:
            fields["content-length"] = tuple(length)
        elif body:
            fields["content-length"] = (str(len(body)).encode(),)
        original_method = _single(lines, ORIGINAL_METHOD_HEADERS)
        return ClientRequest(
            method=original_method.decode("latin-1") if original_method else method,
            target_uri=self._target_uri(lines, client_target),
            fields=fields,
            body=body,
        )

    def _target_uri(
        self, lines: Mapping[bytes, list[bytes]], client_target: bytes | None
    ) -> str | None:
        if ORIGINAL_URL_HEADER in lines:
            url = _only(lines, ORIGINAL_URL_HEADER)
            parts = _URL.fullmatch(url.decode("ascii")) if url is not None else None
            if parts is None:
                return None
            scheme, authority, target = parts.group("scheme", "authority", "target")
        else:
            raw_target = _single(lines, ORIGINAL_TARGET_HEADERS) or client_target
            raw_scheme, raw_authority = _only(lines, b"x-forwarded-proto"), _authority(lines)
            if raw_target is None or raw_scheme is None or raw_authority is None:
                return None
            target = raw_target.decode("latin-1")
            scheme, authority = raw_scheme.decode("ascii"), raw_authority.decode("ascii")
        if not (
            _SCHEME.fullmatch(scheme.lower())
            and _AUTHORITY.fullmatch(authority)
            and _REQUEST_TARGET.fullmatch(target)
        ):
            return None
        origin = self._public_base_url or f"{scheme.lower()}://{authority}"
        return origin + target


def _single(lines: Mapping[bytes, list[bytes]], names: tuple[bytes, ...]) -> bytes | None:
    """The first of `names` the check carries, if it carries it exactly once."""
    for name in names:
        if name in lines:
            return _only(lines, name)
    return None


def _only(lines: Mapping[bytes, list[bytes]], name: bytes) -> bytes | None:
    values = lines.get(name, ())
    if len(values) != 1 or not values[0].isascii():
        return None
    return values[0]


def _authority(lines: Mapping[bytes, list[bytes]]) -> bytes | None:
    # A proxy that sets X-Forwarded-Host is believed alone, even when it sent it twice.
    return _only(lines, b"x-forwarded-host" if b"x-forwarded-host" in lines else b"host")
