"""The check routes (`/auth…`), independent of how HTTP reaches them: the policy a path names
(its grammar: authsvc.routes), the verdict for a request's headers, the answer's status
and header bytes, and the record of the decision.

Two servers call it: the fast path of authsvc.http.protocol, inside the HTTP parser's
callbacks, and the ASGI app (authsvc.http.app) for what the fast path hands on. Both get the
same verdict, status and headers for the same request.
"""

from __future__ import annotations

import logging
import math
import re
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, overload

from authsvc.check.cache import VerdictMemo
from authsvc.check.credentials import CredentialReader
from authsvc.check.origin import (
    ORIGINAL_METHOD_HEADERS,
    ORIGINAL_TARGET_HEADERS,
    ORIGINAL_URL_HEADER,
    ClientRequestReader,
)
from authsvc.check.signing import MessageSignatures
from authsvc.check.verify import Checker, Verdict
from authsvc.observe.decisionlog import DecisionLog, header_text
from authsvc.observe.metrics import Metrics
from authsvc.observe.trace import (
    APPROOV_TRACE_HEADER,
    TRACEPARENT_HEADER,
    approov_trace_id,
    w3c_trace_id,
)
from authsvc.policy import BindingMode, Decision, Reason, SigningMode, approov_status
from authsvc.routes import RoutePolicy, parse_route
from authsvc.store.replay import ReplayStore, StoreUnavailable

log = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]
Decided = tuple[Verdict, str | None]
"""A verdict, and the type of the exception that made it an internal error."""

# Values copied into response headers: printable ASCII only, bounded.
_SAFE_HEADER_VALUE = re.compile(rb"[\x21-\x7e]{1,256}")
# Where a proxy says what the client asked for (authsvc.check.origin): the first one sent is logged
# with each decision (message signing believes them only when they all agree).
_ORIGINAL_METHOD_HEADERS = tuple(name.encode() for name in ORIGINAL_METHOD_HEADERS)
_ORIGINAL_URI_HEADERS = tuple(
    name.encode() for name in (ORIGINAL_URL_HEADER, *ORIGINAL_TARGET_HEADERS)
)
# Envoy's own mark on the requests it makes, ext_authz checks included; a client cannot send it
# through Envoy, and elsewhere it can only turn a 204 into a 200 (both allow everywhere).
_ENVOY_CHECK_HEADER = b"x-envoy-expected-rq-timeout-ms"
_CONTEXT_HEADERS = frozenset(
    (
        *_ORIGINAL_METHOD_HEADERS,
        *_ORIGINAL_URI_HEADERS,
        b"x-request-id",
        _ENVOY_CHECK_HEADER,
        b"content-length",
        b"transfer-encoding",
        b"expect",
    )
)


@dataclass(slots=True)
class CheckRequest:
    """A check request as the HTTP layer parsed it."""

    method: str
    raw_path: bytes
    query: bytes
    headers: Headers
    """Names lower-cased, values as received, every copy in order."""
    context: dict[bytes, bytes]
    """The last copy of each header the answer and the log look at (CheckEndpoint.request)."""

    @property
    def announces_body(self) -> bool:
        length = self.context.get(b"content-length")
        return b"transfer-encoding" in self.context or bool(length and length.strip(b" \t0"))

    @property
    def expects_continue(self) -> bool:
        expect = self.context.get(b"expect")
        return expect is not None and expect.lower() == b"100-continue"

    @property
    def framing_known(self) -> bool:
        """False for a Transfer-Encoding whose last coding is not chunked (RFC 9112 6.3): where
        the body ends cannot be known, which llhttp finds only once the body begins."""
        coding = self.context.get(b"transfer-encoding")
        return coding is None or coding.rsplit(b",", 1)[-1].strip(b" \t").lower() == b"chunked"

    def appended_target(self) -> bytes:
        """Behind a path-appending proxy (Envoy): the client's raw path and query, after the
        policy segment."""
        # The decoded path had a slash after the policy; the raw one may spell it `%2F`.
        slash = self.raw_path.find(b"/", 1)
        client_path = self.raw_path[slash:] if slash > 0 else self.raw_path
        return client_path + b"?" + self.query if self.query else client_path


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    head: bytes
    """The response's header lines, each ending in CRLF."""


class CheckEndpoint:
    """Everything `/auth…` does but HTTP itself, decided once per setting at start-up."""

    def __init__(
        self,
        *,
        verifier: Checker,
        signatures: MessageSignatures,
        replay_store: ReplayStore,
        credentials: CredentialReader,
        client_requests: ClientRequestReader,
        default_binding: BindingMode,
        default_signing: SigningMode,
        allow_status: int,
        status_header: str | None,
        log: DecisionLog | None,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        """`default_binding`, `default_signing`: the policy of `/auth`; `status_header`: where
        the app reports its token fetch (None: not read)."""
        self._verifier = verifier
        self._signatures = signatures
        self._replay_store = replay_store
        self._store_answering = True
        self._requests = client_requests
        self._log = log
        self._metrics = metrics
        self._clock = clock
        self._reader = credentials
        self._status_name = status_header.lower().encode("ascii") if status_header else None
        self._context_names = _CONTEXT_HEADERS | {
            credentials.token_name,
            *([self._status_name] if self._status_name else []),
            APPROOV_TRACE_HEADER,
            TRACEPARENT_HEADER,
        }
        self._default_binding = default_binding
        self._default_signing = default_signing
        self._allow_status = allow_status
        self._vary = b"vary: %s\r\n" % ", ".join(credentials.names).encode("ascii")
        self._verdict_heads = VerdictMemo(self._verdict_head)
        # The routes without a client's path: a few dozen names at most, each parsed once.
        self._routes: dict[str, RoutePolicy] = {}

    def request(self, method: str, raw_path: bytes, query: bytes, headers: Headers) -> CheckRequest:
        """A check request as parsed, with the last copy of each header this endpoint reads
        for the answer and the log."""
        names = self._context_names
        context = {name: value for name, value in headers if name in names}
        return CheckRequest(method, raw_path, query, headers, context)

    def route(self, path: str) -> RoutePolicy | None:
        """The policy `path` names, or None if it is not a check route."""
        known = self._routes.get(path)
        if known is not None:
            return known
        route = parse_route(path, self._default_binding, self._default_signing)
        if route is not None and not route.appended:
            self._routes[path] = route
        return route

    @overload
    def decide(self, route: RoutePolicy, request: CheckRequest) -> Decided | None: ...
    @overload
    def decide(self, route: RoutePolicy, request: CheckRequest, body: bytes) -> Decided: ...

    def decide(
        self, route: RoutePolicy, request: CheckRequest, body: bytes | None = None
    ) -> Decided | None:
        """The verdict, and the type of the exception that made it an internal error. None when
        a signature is due over a body the request announced and `body` is None: decide again
        with the body. The client's request (and its body) is read only when a signature is
        due, so a failed token is answered at once."""
        try:
            verdict = self._verifier.check(self._reader.read(request.headers), route.binding)
            if self._signatures.applies(verdict, route.signing):
                if body is None and request.announces_body:
                    return None
                client_request = self._requests.read(
                    request.headers,
                    method=request.method,
                    client_target=request.appended_target() if route.appended else None,
                    body=body,
                )
                verdict = self._signatures.check(verdict, client_request, route.signing)
            if route.monitored and verdict.replay is None:  # else once it is claimed
                verdict = verdict.monitored()
        except Exception as exc:  # any bug is a deny, never a 500 that nginx turns into an error
            log.error("verification failed, denied: %s", _where(exc))
            return Verdict(Reason.INTERNAL_ERROR, Decision.DENY), type(exc).__name__
        return verdict, None

    async def claimed(self, verdict: Verdict, route: RoutePolicy) -> Decided:
        """A single-use signature's verdict once claimed in the replay store: as it was the
        first time, `message_replayed` after; `replay_store_unavailable` (a deny) when the
        store could not say. Only an allowed signature is claimed: a refused one is not used."""
        claim = verdict.replay
        if claim is None:
            return verdict, None
        started = time.perf_counter()
        try:
            try:
                outcome = "first" if await self._replay_store.claim(*claim) else "replayed"
            except StoreUnavailable as unavailable:
                outcome = "unavailable"
                self._store_answers(False, str(unavailable))
            else:
                self._store_answers(True)
            self._metrics.record_replay(outcome, time.perf_counter() - started)
            if outcome == "first":
                verdict = replace(verdict, replay=None)
            else:
                reason = _REPLAY_REFUSALS[outcome]
                verdict = self._signatures.refused(verdict, reason)
            if route.monitored:
                verdict = verdict.monitored()
        except Exception as exc:  # as in decide: a bug is a deny
            log.error("replay claim failed, denied: %s", _where(exc))
            return Verdict(Reason.INTERNAL_ERROR, Decision.DENY), type(exc).__name__
        return verdict, None

    def answer(self, verdict: Verdict, route: RoutePolicy, request: CheckRequest) -> Answer:
        """The status and headers for `verdict`; nothing here may turn it into an error."""
        # Envoy's ext_authz (Istio, Envoy Gateway) allows on 200 alone: a 204 would reach the
        # client as an empty success. Its checks carry the client's path, or its own header.
        if not verdict.allowed:
            status = 401
        elif route.appended or _ENVOY_CHECK_HEADER in request.context:
            status = 200
        else:
            status = self._allow_status
        try:
            head = self._verdict_heads(verdict)
            # A message signature covers one request: no allow of a signing route is reusable.
            claims = verdict.claims
            if route.signing is SigningMode.OFF and verdict.decision is Decision.ALLOW and claims:
                head += self._cacheable(claims)
            else:
                head += b"cache-control: no-store\r\n"
            request_id = request.context.get(b"x-request-id")
            if request_id is not None and _SAFE_HEADER_VALUE.fullmatch(request_id):
                head += b"x-request-id: %s\r\n" % request_id
        except Exception as exc:
            log.error("decision %s answered without its headers: %s", verdict.reason, _where(exc))
            head = b""
        if status != 204:  # a 204 has no body and no Content-Length (RFC 9110 8.6)
            head += b"content-length: 0\r\n"
        return Answer(status, head)

    @staticmethod
    def _verdict_head(verdict: Verdict) -> bytes:
        """The headers that depend on the verdict alone (once per cached verdict)."""
        head = b"x-approov-reason: %s\r\n" % verdict.reason.value.encode()
        did = forwarded_device_id(verdict)
        return head if did is None else head + b"x-approov-did: %s\r\n" % did

    def _cacheable(self, claims: Mapping[str, Any]) -> bytes:
        # A cached allow must never outlive the token, nor serve another token or binding.
        max_age = max(0, math.floor(claims["exp"] - self._clock()))
        return b"cache-control: max-age=%d\r\n%s" % (max_age, self._vary)

    def _store_answers(self, answers: bool, why: str = "") -> None:
        """Log when the replay store stops answering, and when it is back: once each, not per
        check (each refused check has its decision line)."""
        if answers == self._store_answering:
            return
        self._store_answering = answers
        if answers:
            log.info("the replay store answers again")
        else:
            log.warning("the replay store does not answer, single-use routes deny: %s", why)

    def flush(self) -> None:
        """Write the decision lines and the metrics still pending."""
        if self._log is not None:
            self._log.flush()
        self._metrics.flush()

    def record(
        self,
        verdict: Verdict,
        route: RoutePolicy,
        request: CheckRequest,
        started: float,
        error: str | None,
    ) -> None:
        """After the answer: the metrics and the decision line; a failure is logged, never
        raised."""
        try:
            elapsed = time.perf_counter() - started
            context = request.context
            status = self._approov_status(context)
            self._metrics.record(verdict, elapsed, status)
            if self._log is not None:
                if route.appended:  # Envoy: the check's method and target are the client's
                    method, uri = request.method.encode(), request.appended_target()
                else:
                    method = _first(context, _ORIGINAL_METHOD_HEADERS) or request.method.encode()
                    uri = _first(context, _ORIGINAL_URI_HEADERS) or request.raw_path
                self._log.record(
                    verdict,
                    binding=route.binding.value,
                    signing=route.signing.value,
                    monitored=route.monitored,
                    method=header_text(method),
                    uri=header_text(uri),
                    request_id=header_text(context.get(b"x-request-id")),
                    latency_ms=elapsed * 1000,
                    error=error,
                    approov_status=status,
                    approov_trace_id=approov_trace_id(context.get(APPROOV_TRACE_HEADER)),
                    trace_id=w3c_trace_id(context.get(TRACEPARENT_HEADER)),
                )
        except Exception as exc:
            log.error("decision %s answered but not recorded: %s", verdict.reason, _where(exc))

    def _approov_status(self, context: dict[bytes, bytes]) -> str | None:
        """What the app reported of its token fetch: its status header, else a status name
        in its token header; never part of the verdict."""
        if self._status_name is not None:
            reported = context.get(self._status_name, b"").strip(b" \t")
            if reported:
                return approov_status(reported)
        token = context.get(self._reader.token_name)
        return None if token is None else self._reader.fetch_status(token)


def forwarded_device_id(verdict: Verdict) -> bytes | None:
    """The `X-Approov-Did` an allow sets on the request to the backend; None for a deny.

    Every allow carries it, empty when nothing trusted holds one (a token without `did`, or one
    allowed only by monitor mode): Envoy, Istio and Traefik replace a client-sent copy only with
    a header the answer carries."""
    if not verdict.allowed:
        return None
    claims = verdict.claims
    if verdict.decision is not Decision.ALLOW or claims is None:
        return b""
    did = claims.get("did")
    did_value = did.encode() if isinstance(did, str) and did.isascii() else b""
    return did_value if _SAFE_HEADER_VALUE.fullmatch(did_value) else b""


_REPLAY_REFUSALS = {
    "replayed": Reason.MESSAGE_REPLAYED,
    "unavailable": Reason.REPLAY_STORE_UNAVAILABLE,
}


def _first(context: dict[bytes, bytes], names: tuple[bytes, ...]) -> bytes | None:
    for name in names:
        value = context.get(name)
        if value is not None:
            return value
    return None


def _where(exc: BaseException) -> str:
    """An exception's type and where it was raised; never its message, which may hold a value
    taken from the request."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    return (
        f"{type(exc).__name__} at {frame.filename}:{frame.lineno}" if frame else type(exc).__name__
    )
