"""Envoy's gRPC ext_authz (`envoy.service.auth.v3.Authorization/Check`), answered by the same
CheckEndpoint as `/auth…`, in the same worker and event loop as the HTTP server.

Envoy hands over the client's request as fields of the check: its method, raw path and query,
authority, scheme, headers (every copy, with `encode_raw_headers`) and, with
`with_request_body`, its body. The check is then the one behind a path-appending proxy (Envoy
over HTTP): the client's method and target are the check's own, so a client's `X-Original-*`
must agree with them or a signed request is refused (authsvc.check.origin).

The policy is the route's: Envoy's per-route `context_extensions` key `approov-route` holds a
check path of the grammar (authsvc.routes), `/auth` when absent. A client can neither add nor
change it. A value outside the grammar is a configuration error: logged, and every check of that
route denied as `route_unknown`.

Answers: allow → OK, with `x-approov-did` and `x-approov-reason` set on the request to the
backend, overwriting any client copy; deny → a 401 for the client with `x-approov-reason`.
Nothing a client sends makes a gRPC error: Envoy would answer it with its `status_on_error`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any, TypeAlias

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from authsvc.check.origin import FORWARDED_PROTO_HEADER
from authsvc.check.verify import Verdict
from authsvc.http.endpoint import CheckEndpoint, CheckRequest, Headers, forwarded_device_id
from authsvc.policy import Decision, Reason
from authsvc.routes import AUTH_PATH, RoutePolicy

log = logging.getLogger(__name__)

ROUTE_KEY = "approov-route"
"""The `context_extensions` key naming a route's check path."""
SERVICE_NAME = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_OK = status_pb2.Status(code=code_pb2.OK)
_DENIED = status_pb2.Status(code=code_pb2.PERMISSION_DENIED)
_UNAUTHORIZED = http_status_pb2.HttpStatus(code=http_status_pb2.Unauthorized)
# The check path the client's path is appended to: the route itself comes from Envoy's config.
_APPENDED_TO = AUTH_PATH.encode()
# Envoy's AttributeContext.HttpRequest (xds-protos has no type stubs).
HttpRequest: TypeAlias = Any
_FORWARDED_PROTO = FORWARDED_PROTO_HEADER.encode()
# Told by the check's attributes, never by a header: Envoy's HTTP/1 Host is its :authority.
_FROM_ATTRIBUTES = frozenset((b"host", _FORWARDED_PROTO))


def _header(name: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=name, value=value), append_action=_OVERWRITE
    )


def response(verdict: Verdict) -> external_auth_pb2.CheckResponse:
    """Envoy's answer for `verdict`."""
    reason = _header("x-approov-reason", verdict.reason.value)
    did = forwarded_device_id(verdict)
    if did is None:
        return external_auth_pb2.CheckResponse(
            status=_DENIED,
            denied_response=external_auth_pb2.DeniedHttpResponse(
                status=_UNAUTHORIZED, headers=[reason]
            ),
        )
    return external_auth_pb2.CheckResponse(
        status=_OK,
        ok_response=external_auth_pb2.OkHttpResponse(
            headers=[_header("x-approov-did", did.decode("ascii")), reason]
        ),
    )


class ExtAuthz(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    """`Authorization/Check` over a CheckEndpoint."""

    def __init__(self, checks: CheckEndpoint) -> None:
        self._checks = checks
        # The routes Envoy names: a few, each parsed (and an unknown one logged) once.
        self._routes: dict[str, RoutePolicy | None] = {}
        self._unknown_route_policy = replace(_known(checks.route(AUTH_PATH)), appended=True)

    async def Check(
        self,
        check: external_auth_pb2.CheckRequest,
        context: object,
    ) -> external_auth_pb2.CheckResponse:
        started = time.perf_counter()
        try:
            attributes = check.attributes
            route = self._route(attributes.context_extensions.get(ROUTE_KEY, AUTH_PATH))
            http = attributes.request.http
            request = _request(self._checks, http)
            verdict, error = (
                (Verdict(Reason.ROUTE_UNKNOWN, Decision.DENY), None)
                if route is None
                else self._checks.decide(route, request, _body(http))
            )
            route = route or self._unknown_route_policy
            if verdict.replay is not None:  # a single-use signature: claimed before allowed
                verdict, error = await self._checks.claimed(verdict, route)
        except Exception as exc:  # as the HTTP server: a bug is a deny, never a gRPC error
            log.error("gRPC check failed, denied: %s", type(exc).__name__)
            return response(Verdict(Reason.INTERNAL_ERROR, Decision.DENY))
        answer = response(verdict)
        self._checks.record(verdict, route, request, started, error)
        return answer

    def _route(self, path: str) -> RoutePolicy | None:
        if path in self._routes:
            return self._routes[path]
        route = self._checks.route(path)
        if route is None or route.appended:
            log.warning(
                "Envoy's %s %r is not a check path (%s): its checks are denied as %s",
                ROUTE_KEY,
                path,
                "/auth, /auth-binding-off, /auth-signing-required-monitor, …",
                Reason.ROUTE_UNKNOWN.value,
            )
            known = None
        else:
            known = replace(route, appended=True)
        self._routes[path] = known
        return known


def _request(checks: CheckEndpoint, http: HttpRequest) -> CheckRequest:
    """The check as the endpoint reads a path-appending proxy's (Envoy over HTTP): `/auth`, then
    the client's raw path and query; the client's method and headers, its authority as Host."""
    client_path, _, query = http.path.encode("utf-8").partition(b"?")
    if not client_path.startswith(b"/"):  # `*` or an authority: no origin-form target
        client_path = b"/" + client_path
    return checks.request(http.method, _APPENDED_TO + client_path, query, _headers(http))


def _headers(http: HttpRequest) -> Headers:
    """The client's headers, every copy in order (Envoy's `header_map` with
    `encode_raw_headers`; else its map, copies joined), with the request's authority as `host`
    and its scheme as the only `x-forwarded-proto`: Envoy's own, whatever a client sent."""
    headers: Headers = [
        (b"host", http.host.encode("utf-8")),
        (_FORWARDED_PROTO, http.scheme.encode("utf-8")),
    ]
    if http.header_map.headers:
        received = (
            (entry.key, entry.raw_value or entry.value.encode("utf-8"))
            for entry in http.header_map.headers
        )
    else:
        received = ((name, value.encode("utf-8")) for name, value in http.headers.items())
    for name, value in received:
        key = name.lower().encode("latin-1")
        if not key.startswith(b":") and key not in _FROM_ATTRIBUTES:
            headers.append((key, value))
    return headers


def _body(http: HttpRequest) -> bytes:
    """The client's body as Envoy sent it: bytes with `pack_as_bytes`, else as UTF-8 text (Envoy
    replaced what was not UTF-8, so such a body fails its digest); empty when not sent."""
    raw: bytes = http.raw_body
    return raw or http.body.encode("utf-8")


def _known(route: RoutePolicy | None) -> RoutePolicy:
    if route is None:
        raise ValueError(f"{AUTH_PATH} is not a check route")
    return route


class GrpcServer:
    """The gRPC server of one worker: ext_authz checks and grpc.health.v1."""

    def __init__(self, server: grpc.aio.Server, health: HealthServicer) -> None:
        self._server = server
        self._health = health

    async def stop(self, grace: float, linger: float) -> None:
        """Health says NOT_SERVING at once; checks are still answered for `linger` seconds, then
        the listener closes (Envoy is told to go elsewhere: HTTP/2 GOAWAY) and the checks in
        flight get `grace` seconds to finish."""
        await self._health.enter_graceful_shutdown()
        await asyncio.sleep(linger)
        await self._server.stop(grace)


async def start(checks: CheckEndpoint, bind: str) -> GrpcServer:
    """A gRPC server on `bind` answering ext_authz checks with `checks`, and grpc.health.v1.

    Every worker listens on the same address (SO_REUSEPORT): the kernel spreads Envoy's
    connections over them, as it does for gunicorn's shared HTTP socket. Raises RuntimeError
    when it cannot listen there."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(ExtAuthz(checks), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(bind)
    for service in ("", SERVICE_NAME):
        await health.set(service, health_pb2.HealthCheckResponse.SERVING)
    await server.start()
    return GrpcServer(server, health)
