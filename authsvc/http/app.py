"""The HTTP face of authsvc: the `/auth` endpoint in plain ASGI, the rest a Falcon app whose
responders only translate HTTP.

`/auth` answers the allow status or 401 for any method and any headers; the policy (how the
token binding is checked) is chosen by the path the proxy sends the check to, never by the
client. `/healthz` and `/readyz` are for orchestrators, `/metrics` for Prometheus.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import falcon
import falcon.asgi

from authsvc.check.cache import CachingVerifier
from authsvc.check.credentials import CredentialReader
from authsvc.check.origin import ClientRequestReader
from authsvc.check.verify import Checker
from authsvc.http.endpoint import CheckEndpoint
from authsvc.observe.decisionlog import DecisionLog
from authsvc.observe.metrics import CONTENT_TYPE, Metrics
from authsvc.routes import RoutePolicy
from authsvc.runtime import Runtime

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The most of a client's body authsvc reads, when a proxy forwards it (Envoy
# `with_request_body`; the shipped envoy.yaml sets the same limit).
MAX_FORWARDED_BODY_BYTES = 1 << 20
_BODY_TIMEOUT_SECONDS = 2.0


class AuthEndpoint:
    """`/auth…` in plain ASGI, any method, ahead of the Falcon app: what the server's fast path
    (authsvc.http.protocol) hands on, a check that needs its forwarded body above all.

    Measured (bench/README.md): Falcon's request and response objects were ~60% of the app's
    time on a check, which only needs the raw header list and three or four response headers.
    The answer goes out before the metrics and the decision line, which cannot change it.
    """

    def __init__(self, checks: CheckEndpoint) -> None:
        self._checks = checks

    async def __call__(
        self, scope: Scope, route: RoutePolicy, receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        checks = self._checks
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        request = checks.request(
            scope["method"], raw_path, scope.get("query_string", b""), scope["headers"]
        )
        decided = checks.decide(route, request)
        if decided is None:  # a signature is due over the body the request announced
            decided = checks.decide(route, request, await _read_body(receive))
        verdict, error = decided
        if verdict.replay is not None:  # a single-use signature: claimed before it is allowed
            verdict, error = await checks.claimed(verdict, route)
        answer = checks.answer(verdict, route, request)
        headers = [tuple(line.split(b": ", 1)) for line in answer.head.split(b"\r\n")[:-1]]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        checks.record(verdict, route, request, started, error)


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

    def __init__(self, checks: CheckEndpoint, other_routes: AsgiApp) -> None:
        self.checks = checks
        """What the server hands its fast path (authsvc.http.protocol) to answer checks with."""
        self._auth = AuthEndpoint(checks)
        self._other_routes = other_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["headers"] = [(name, value) for name, value in scope["headers"]]
            route = self.checks.route(scope["path"])
            if route is not None:
                await self._auth(scope, route, receive, send)
                return
            receive = self._empty_body
        await self._other_routes(scope, receive, send)

    def flush(self) -> None:
        """Write the decision lines still pending; the worker calls it when it stops."""
        self.checks.flush()

    async def _empty_body(self) -> Message:
        return dict(self._EMPTY_BODY)


def create_app(
    runtime: Runtime,
    *,
    decision_log: DecisionLog | None = None,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
    is_stopping: Callable[[], bool] = lambda: False,
) -> AuthService:
    """Build the ASGI app from a loaded Runtime; reads no environment."""
    settings, verifier = runtime.settings, runtime.verifier
    metrics = metrics if metrics is not None else Metrics()
    metrics.watch(runtime.keys)
    if isinstance(verifier, CachingVerifier):
        metrics.watch_cache(verifier)
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
        CheckEndpoint(
            verifier=verifier,
            signatures=runtime.signatures,
            replay_store=runtime.replay_store,
            credentials=CredentialReader(
                settings.token_header, settings.binding_headers, settings.token_prefix
            ),
            client_requests=ClientRequestReader(settings.public_base_url),
            default_binding=settings.binding_mode,
            default_signing=settings.signing_mode,
            allow_status=settings.allow_status,
            status_header=settings.status_header,
            log=log,
            metrics=metrics,
            clock=clock,
        ),
        app,
    )
