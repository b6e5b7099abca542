"""What a proxy says of the client's request, read from the check request it sends authsvc.

Proxies say it in different headers, and each passes a client's copies of the others through
(Caddy and Traefik forward every client header; nginx those it does not set). So no header is
believed alone: every source the check carries must agree, or the client's request is unknown
and every signed request is denied as `message_target_unknown`. A forged header can then only
refuse the forger's own request, whatever configuration the user copied.

- method: `X-Original-Method` (nginx, ingress-nginx), `X-Forwarded-Method` (Caddy, Traefik),
  and the check's own method behind a path-appending proxy (Envoy keeps the client's); with
  none of them, the check's own method;
- path and query, raw: the path of ingress-nginx's `X-Original-URL`, `X-Original-URI`
  (nginx), `X-Forwarded-Uri` (Caddy, Traefik), and what follows the policy in the check's own
  path (Envoy's `path_prefix`);
- scheme: the scheme of `X-Original-URL` and `X-Forwarded-Proto`;
- authority: the authority of `X-Original-URL`, `X-Forwarded-Host`, and the check's `Host`
  behind Envoy (which keeps the client's authority) or when nothing else names one; and the
  host the proxy routed the request by, `X-Approov-Routed-Host` (nginx's `$host`: the request
  line's host wins over the Host header, RFC 9112 3.2.2), which the authority's host must be,
  so a request signed for one virtual host cannot be replayed to another;
- APPROOV_PUBLIC_BASE_URL, when set (TLS ends in front of the proxy), replaces the scheme and
  the authority, and no header is read for them;
- the length of the client's body: `X-Original-Content-Length` (nginx, Caddy), or the length
  of the body itself when the proxy forwarded it (Envoy `with_request_body`).

The URL is rebuilt normalised (RFC 3986 6.2.3: lower-case scheme and host, no default port),
the form the Approov SDKs sign. A header sent twice, or a value that is not its URL part,
leaves that part unknown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from authsvc.check.message import ClientRequest, fields_by_name, split_url

ORIGINAL_METHOD_HEADERS = ("x-original-method", "x-forwarded-method")
ORIGINAL_URL_HEADER = "x-original-url"
ORIGINAL_TARGET_HEADERS = ("x-original-uri", "x-forwarded-uri")
ORIGINAL_LENGTH_HEADER = "x-original-content-length"
FORWARDED_PROTO_HEADER = "x-forwarded-proto"
FORWARDED_HOST_HEADER = "x-forwarded-host"
ROUTED_HOST_HEADER = "x-approov-routed-host"

_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")
# RFC 3986 authority without userinfo: reg-name or IP literal, optional port.
_AUTHORITY = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(?::(?P<port>[0-9]*))?"
)
_REQUEST_TARGET = re.compile(r"/[\x21-\x7e]*")
_DEFAULT_PORTS = {"http": "80", "https": "443"}

_Fields = Mapping[str, tuple[bytes, ...]]


class _Unknown(Exception):
    """A part of the client's request that the check does not tell, or tells two ways."""


class ClientRequestReader:
    """Builds the signing `ClientRequest` of a check request; the base URL is decided once."""

    __slots__ = ("_public_base_url",)

    def __init__(self, public_base_url: str | None) -> None:
        # Validated as a setting (authsvc.config): scheme://authority.
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
        received = fields_by_name(headers)
        fields = dict(received)
        # The check's own Content-Length is the check's (0, or absent), never the client's.
        fields.pop("content-length", None)
        # Empty when the client sent none (Caddy sets the header all the same).
        length = tuple(value for value in received.get(ORIGINAL_LENGTH_HEADER, ()) if value)
        if length:
            fields["content-length"] = length
        elif body:
            fields["content-length"] = (str(len(body)).encode(),)
        return ClientRequest(
            method=_or_none(self._method, received, method, client_target),
            target_uri=_or_none(self._target_uri, received, client_target),
            fields=fields,
            body=body,
        )

    @staticmethod
    def _method(fields: _Fields, check_method: str, client_target: bytes | None) -> str:
        told = _told(fields, ORIGINAL_METHOD_HEADERS)
        if client_target is not None:  # Envoy: the check is made with the client's method
            told.append(check_method.encode("latin-1"))
        return _agreed(told).decode("ascii") if told else check_method

    def _target_uri(self, fields: _Fields, client_target: bytes | None) -> str:
        url = _original_url(fields)
        targets = _told(fields, ORIGINAL_TARGET_HEADERS)
        if url is not None:
            targets.append(url[2].encode("ascii"))
        if client_target is not None:
            targets.append(client_target)
        target = _agreed(targets).decode("ascii")
        if not _REQUEST_TARGET.fullmatch(target):
            raise _Unknown
        if self._public_base_url is not None:
            return self._public_base_url + target
        schemes = _told(fields, (FORWARDED_PROTO_HEADER,))
        if url is not None:
            schemes.append(url[0].encode("ascii"))
        scheme = _agreed([scheme.lower() for scheme in schemes]).decode("ascii")
        authorities = _told(fields, (FORWARDED_HOST_HEADER,))
        if url is not None:
            authorities.append(url[1].encode("ascii"))
        # The check's Host is the client's behind Envoy; elsewhere it is authsvc's own address,
        # believed only when nothing else names the client's.
        if client_target is not None or not authorities:
            authorities.extend(_told(fields, ("host",)))
        origins = [_origin(scheme, authority.decode("ascii")).encode() for authority in authorities]
        origin = _agreed(origins).decode("ascii")
        for routed in _told(fields, (ROUTED_HOST_HEADER,)):
            if _host(routed.decode("ascii")) != _host(origin.partition("://")[2]):
                raise _Unknown
        return origin + target


def _or_none(read: Callable[..., str], *args: Any) -> str | None:
    try:
        return read(*args)
    except _Unknown:
        return None


def _told(fields: _Fields, names: tuple[str, ...]) -> list[bytes]:
    """The value of each of `names` the check carries; one sent twice, or not ASCII, is
    unknown (a proxy passed the client's copy along with its own)."""
    told = []
    for name in names:
        values = fields.get(name)
        if values is None:
            continue
        if len(values) != 1 or not values[0].isascii():
            raise _Unknown
        told.append(values[0])
    return told


def _agreed(told: list[bytes]) -> bytes:
    if not told or any(value != told[0] for value in told):
        raise _Unknown
    return told[0]


def _original_url(fields: _Fields) -> tuple[str, str, str] | None:
    """ingress-nginx's whole URL, split; None when the check does not carry it."""
    told = _told(fields, (ORIGINAL_URL_HEADER,))
    if not told:
        return None
    url = split_url(told[0].decode("ascii"))
    if url is None:
        raise _Unknown
    return url


def _host(authority: str) -> str:
    """The host of `authority`, lower-case, without its port."""
    parts = _AUTHORITY.fullmatch(authority)
    if parts is None:
        raise _Unknown
    return parts["host"].lower()


def _origin(scheme: str, authority: str) -> str:
    """`scheme://authority` normalised (RFC 3986 6.2.3): lower-case scheme and host, and no
    port when it is the scheme's default."""
    scheme = scheme.lower()
    parts = _AUTHORITY.fullmatch(authority)
    if not _SCHEME.fullmatch(scheme) or parts is None:
        raise _Unknown
    port = parts["port"]
    keep_port = port and port != _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{parts['host'].lower()}" + (f":{port}" if keep_port else "")
