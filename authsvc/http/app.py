"""The HTTP face of authsvc: the `/auth` endpoint in plain ASGI, the rest a Falcon app whose
responders only translate HTTP.

`/auth` answers the allow status or 401 for any method and any headers; the policy (how the
token binding is checked) is chosen by the path the proxy sends the check to, never by the
client. `/healthz` and `/readyz` are for orchestrators, `/metrics` for Prometheus.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import falcon
import falcon.asgi

from authsvc.check.credentials import CredentialReader
from authsvc.check.origin import (
    ORIGINAL_METHOD_HEADERS,
    ORIGINAL_TARGET_HEADERS,
    ORIGINAL_URL_HEADER,
    ClientRequestReader,
)
from authsvc.check.signing import ClientRequest, MessageSignatures
from authsvc.check.verify import Checker, Verdict
from authsvc.config import Settings
from authsvc.observe.decisionlog import DecisionLog, header_text
from authsvc.observe.metrics import CONTENT_TYPE, Metrics
from authsvc.policy import BindingMode, Decision, Reason, SigningMode
from authsvc.runtime import Runtime

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("authsvc.http.app")

AUTH_PATH = "/auth"

REASON_HEADER = "X-Approov-Reason"
DEVICE_ID_HEADER = "X-Approov-Did"
REQUEST_ID_HEADER = "X-Request-ID"
# Values copied into response headers: printable ASCII only, bounded.
_SAFE_HEADER_VALUE = re.compile(rb"[\x21-\x7e]{1,256}")
# Where a proxy says what the client asked for (authsvc.check.origin): the first one sent is logged
# with each decision (message signing believes them only when they all agree).
_ORIGINAL_URI_HEADERS = (ORIGINAL_URL_HEADER, *ORIGINAL_TARGET_HEADERS)
# Envoy's own mark on the requests it makes, ext_authz checks included; a client cannot send it
# through Envoy, and elsewhere it can only turn a 204 into a 200 (both allow everywhere).
_ENVOY_CHECK_HEADER = b"x-envoy-expected-rq-timeout-ms"
_CONTEXT_HEADERS = frozenset(
    (*ORIGINAL_METHOD_HEADERS, *_ORIGINAL_URI_HEADERS, b"x-request-id", _ENVOY_CHECK_HEADER)
)


def _named(kind: str, modes: type[BindingMode] | type[SigningMode]) -> str:
    return rf"(?:-{kind}-(?P<{kind}>" + "|".join(re.escape(mode.value) for mode in modes) + "))?"


# `/auth` uses APPROOV_TOKEN_BINDING and APPROOV_MESSAGE_SIGNING; `-binding-<mode>` and
# `-signing-<mode>` pin either or both (`/auth-binding-off-signing-required`), and `-monitor`
# lets every failure through that monitor mode may, logged as `monitor`. Any of them may be
# followed by `/<anything>`: the client's own path, appended by a proxy such as Envoy
# (`path_prefix`). The policy ends at a hyphenated name, never at a slash, so nothing a client
# appends after the proxy's prefix can reach a weaker policy.
_AUTH_ROUTE = re.compile(
    re.escape(AUTH_PATH)
    + _named("binding", BindingMode)
    + _named("signing", SigningMode)
    + r"(?P<monitor>-monitor)?"
    + r"(?P<client_path>/.*)?\Z",
    re.DOTALL,
)
# The most of a client's body authsvc reads, when a proxy forwards it (Envoy
# `with_request_body`; the shipped envoy.yaml sets the same limit).
MAX_FORWARDED_BODY_BYTES = 1 << 20
_BODY_TIMEOUT_SECONDS = 2.0


class AuthEndpoint:
    """`/auth…` in plain ASGI, any method, ahead of the Falcon app.

    Measured (bench/README.md): Falcon's request and response objects were ~60% of the app's
    time on a check, which only needs the raw header list and three or four response headers.
    The answer goes out before the metrics and the decision line, which cannot change it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        verifier: Checker,
        signatures: MessageSignatures,
        log: DecisionLog | None,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._verifier = verifier
        self._signatures = signatures
        self._requests = ClientRequestReader(settings.public_base_url)
        self._log = log
        self._metrics = metrics
        self._clock = clock
        self._reader = CredentialReader(settings.token_header, settings.binding_headers)
        # The policy each route names, decided once: no name is the default.
        self._binding_modes: dict[str | None, BindingMode] = {
            None: settings.binding_mode,
            **{mode.value: mode for mode in BindingMode},
        }
        self._signing_modes: dict[str | None, SigningMode] = {
            None: settings.signing_mode,
            **{mode.value: mode for mode in SigningMode},
        }
        self._allow_status = settings.allow_status
        self._vary = ", ".join((settings.token_header, *settings.binding_headers)).encode()

    async def __call__(
        self, scope: Scope, route: re.Match[str], receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        mode = self._binding_modes[route["binding"]]
        signing = self._signing_modes[route["signing"]]
        monitored = route["monitor"] is not None
        appended = route["client_path"] is not None
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        context = {name: value for name, value in headers if name in _CONTEXT_HEADERS}
        # Envoy's ext_authz (Istio, Envoy Gateway) allows on 200 alone: a 204 would reach the
        # client as an empty success. Its checks carry the client's path, or its own header.
        from_envoy = appended or _ENVOY_CHECK_HEADER in context
        allow_status = 200 if from_envoy else self._allow_status
        error = None
        try:
            verdict = self._verifier.check(self._reader.read(headers), mode)
            # The client's request (and a forwarded body) only read when a signature is due.
            if self._signatures.applies(verdict, signing):
                client_request = await self._client_request(scope, receive, appended)
                verdict = self._signatures.check(verdict, client_request, signing)
            if monitored:
                verdict = verdict.monitored()
        except Exception as exc:  # any bug is a deny, never a 500 that nginx turns into an error
            verdict = Verdict(Reason.INTERNAL_ERROR, Decision.DENY)
            error = type(exc).__name__
            log.error("verification failed, denied: %s", _where(exc))
        # The answer is decided here; nothing after it may change it or fail the request.
        status = allow_status if verdict.allowed else 401
        try:
            # A message signature covers one request: no allow of a signing route is reusable.
            cacheable = signing is SigningMode.OFF
            response_headers = self._headers(verdict, context.get(b"x-request-id"), cacheable)
        except Exception as exc:
            log.error("decision %s answered without its headers: %s", verdict.reason, _where(exc))
            response_headers = []
        if status != 204:  # a 204 has no body and no Content-Length (RFC 9110 8.6)
            response_headers.append((b"content-length", b"0"))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": b""})
        try:
            self._record(
                scope,
                verdict,
                context,
                policy=(mode, signing),
                monitored=monitored,
                appended=appended,
                started=started,
                error=error,
            )
        except Exception as exc:
            log.error("decision %s answered but not recorded: %s", verdict.reason, _where(exc))

    async def _client_request(
        self, scope: Scope, receive: Receive, appended: bool
    ) -> ClientRequest:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        announced = any(
            name == b"transfer-encoding" or (name == b"content-length" and value.strip(b" 0"))
            for name, value in headers
        )
        return self._requests.read(
            headers,
            method=scope["method"],
            client_target=_appended_target(scope) if appended else None,
            body=await _read_body(receive) if announced else None,
        )

    def _headers(
        self, verdict: Verdict, request_id: bytes | None, cacheable: bool
    ) -> list[tuple[bytes, bytes]]:
        headers = [(b"x-approov-reason", verdict.reason.value.encode())]
        if request_id is not None and _SAFE_HEADER_VALUE.fullmatch(request_id):
            headers.append((b"x-request-id", request_id))
        claims = verdict.claims
        if verdict.decision is not Decision.ALLOW or claims is None:
            # Denied, or allowed only by monitor mode: nothing trusted to cache or forward. Every
            # allow carries the device id header, empty when nothing trusted holds one: Envoy,
            # Istio and Traefik replace a client-sent copy only with a header the answer carries.
            if verdict.allowed:
                headers.append((b"x-approov-did", b""))
            headers.append((b"cache-control", b"no-store"))
            return headers
        did = claims.get("did")
        did_value = did.encode() if isinstance(did, str) and did.isascii() else b""
        headers.append(
            (b"x-approov-did", did_value if _SAFE_HEADER_VALUE.fullmatch(did_value) else b"")
        )
        if not cacheable:
            headers.append((b"cache-control", b"no-store"))
            return headers
        # A cached allow must never outlive the token, nor serve another token or binding.
        max_age = max(0, math.floor(claims["exp"] - self._clock()))
        headers.append((b"cache-control", b"max-age=%d" % max_age))
        headers.append((b"vary", self._vary))
        return headers

    def _record(
        self,
        scope: Scope,
        verdict: Verdict,
        context: Mapping[bytes, bytes],
        *,
        policy: tuple[BindingMode, SigningMode],
        monitored: bool,
        appended: bool,
        started: float,
        error: str | None,
    ) -> None:
        """After the answer: the metrics and the decision line."""
        self._metrics.record(verdict, time.perf_counter() - started)
        if self._log is not None:
            self._log.record(
                verdict,
                policy=policy[0].value,
                signing=policy[1].value,
                monitored=monitored,
                method=_first(context, ORIGINAL_METHOD_HEADERS) or scope["method"],
                uri=_first(context, _ORIGINAL_URI_HEADERS) or _client_target(scope, appended),
                request_id=header_text(context.get(b"x-request-id")),
                latency_ms=(time.perf_counter() - started) * 1000,
                error=error,
            )


def _where(exc: BaseException) -> str:
    """An exception's type and where it was raised; never its message, which may hold a value
    taken from the request."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    return (
        f"{type(exc).__name__} at {frame.filename}:{frame.lineno}" if frame else type(exc).__name__
    )


def _first(context: Mapping[bytes, bytes], names: tuple[bytes, ...]) -> str | None:
    return next((header_text(context[name]) for name in names if name in context), None)


def _raw_path(scope: Scope) -> bytes:
    raw_path: bytes | None = scope.get("raw_path")
    return raw_path or scope["path"].encode("utf-8", "surrogateescape")


def _appended_target(scope: Scope) -> bytes:
    """Behind a path-appending proxy (Envoy): the client's raw path and query, after the
    policy segment."""
    raw_path = _raw_path(scope)
    # The decoded path had a slash after the policy; the raw one may spell it `%2F`.
    slash = raw_path.find(b"/", 1)
    client_path = raw_path[slash:] if slash > 0 else raw_path
    query: bytes = scope.get("query_string", b"")
    return client_path + b"?" + query if query else client_path


def _client_target(scope: Scope, appended: bool) -> str:
    """What the check request itself says of the client's request: behind a path-appending
    proxy, the client's path and query; otherwise the check's own path."""
    return header_text(_appended_target(scope) if appended else _raw_path(scope)) or ""


async def _read_body(receive: Receive) -> bytes:
    """The body a proxy forwarded, up to MAX_FORWARDED_BODY_BYTES and for at most
    _BODY_TIMEOUT_SECONDS: a longer or slower one is checked as cut, and fails its digest."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(_BODY_TIMEOUT_SECONDS):
            while size <= MAX_FORWARDED_BODY_BYTES:
                event = await receive()
                if event["type"] != "http.request":
                    break  # the proxy went away
                chunk: bytes = event.get("body", b"")
                chunks.append(chunk)
                size += len(chunk)
                if not event.get("more_body", False):
                    break
    except TimeoutError:
        pass
    return b"".join(chunks)[:MAX_FORWARDED_BODY_BYTES]


class Health:
    """Liveness: the process answers. Never touches the verifier."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "ok\n"

    on_head = on_get


class Readiness:
    """Readiness: 200 once the verifier has its keys; 503 before, and once stopping."""

    def __init__(self, verifier: Checker, is_stopping: Callable[[], bool]) -> None:
        self._verifier = verifier
        self._is_stopping = is_stopping

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        if self._is_stopping():
            resp.status = falcon.HTTP_503
            resp.text = "stopping\n"
        elif self._verifier.ready:
            resp.text = "ready\n"
        else:
            resp.status = falcon.HTTP_503
            resp.text = "not ready\n"

    on_head = on_get


class MetricsResource:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = CONTENT_TYPE
        resp.data = self._metrics.exposition()


class AuthService:
    """The ASGI app: `/auth…` to its endpoint, everything else to the Falcon app.

    The ASGI spec lets a server pass headers as any iterable of iterable pairs (Falcon's test
    client passes one-pass iterators); authsvc reads the raw pairs (duplicates matter) more
    than once, so they are unpacked into a list first. Falcon's
    ASGI app waits for the first body event before calling a responder, so a request that
    announces a Content-Length but sends no body would stall until a timeout; no route of
    authsvc needs the body, and the server drains or drops it.
    """

    _EMPTY_BODY: ClassVar[Message] = {"type": "http.request", "body": b"", "more_body": False}

    def __init__(self, auth: AuthEndpoint, other_routes: AsgiApp) -> None:
        self._auth = auth
        self._other_routes = other_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["headers"] = [(name, value) for name, value in scope["headers"]]
            route = _AUTH_ROUTE.match(scope["path"])
            if route is not None:
                await self._auth(scope, route, receive, send)
                return
            receive = self._empty_body
        await self._other_routes(scope, receive, send)

    async def _empty_body(self) -> Message:
        return dict(self._EMPTY_BODY)


def create_app(
    runtime: Runtime,
    *,
    decision_log: DecisionLog | None = None,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
    is_stopping: Callable[[], bool] = lambda: False,
) -> AsgiApp:
    """Build the ASGI app from a loaded Runtime; reads no environment."""
    settings, verifier = runtime.settings, runtime.verifier
    metrics = metrics if metrics is not None else Metrics()
    metrics.watch(runtime.keys)
    log = None
    if settings.logging_enabled:
        log = decision_log if decision_log is not None else DecisionLog()
    app = falcon.asgi.App()
    # An empty 401 gets no Content-Type; responders that have a body set their own.
    app.resp_options.default_media_type = None  # type: ignore[assignment]
    app.add_route("/healthz", Health())
    app.add_route("/readyz", Readiness(verifier, is_stopping))
    app.add_route("/metrics", MetricsResource(metrics))
    return AuthService(
        AuthEndpoint(
            settings,
            verifier=verifier,
            signatures=runtime.signatures,
            log=log,
            metrics=metrics,
            clock=clock,
        ),
        app,
    )
