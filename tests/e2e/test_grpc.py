"""What only the gRPC door does, with the real binaries: Envoy 1.40 running envoy/envoy-grpc.yaml
in front of `authsvc serve --grpc-bind`, and authsvc's gRPC port called directly. (Everything
the doors share runs through it in test_gateways.py and test_message_signing.py.)"""

from __future__ import annotations

import hashlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authsvc.http.extauthz import ROUTE_KEY, SERVICE_NAME
from authsvc.http.worker import GRPC_LINGER_SECONDS
from demo.processes import free_port
from tests.e2e.app_requests import AUTHORIZATION, valid_token
from tests.e2e.conftest import FRONT_DOORS, start_stack
from tests.e2e.servers import Authsvc, GatewayStack, ProxiedStack, send_lines
from tests.e2e.test_gateways import decision_for
from tests.e2e.test_message_signing import app_request, deliver, url
from tests.support.signatures import sign
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def grpc_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    FRONT_DOORS["envoy-grpc"].available()
    running = start_stack("envoy-grpc", tmp_path_factory.mktemp("envoy-grpc"))
    assert isinstance(running, GatewayStack)
    yield running
    running.stop()


@pytest.fixture
def channel(grpc_stack: GatewayStack) -> Iterator[grpc.Channel]:
    assert grpc_stack.grpc_address is not None
    with grpc.insecure_channel(grpc_stack.grpc_address) as opened:
        yield opened


def test_a_token_sent_twice_reaches_authsvc_as_two_copies_and_is_refused_as_duplicated(
    grpc_stack: ProxiedStack,
) -> None:
    """envoy-grpc.yaml's encode_raw_headers: every copy, not one value joined by a comma."""
    token = valid_token()
    before = grpc_stack.backend_requests()
    reply = send_lines(
        grpc_stack.port,
        "GET",
        "/api/twice",
        [("Approov-Token", token), ("Approov-Token", token), ("Authorization", AUTHORIZATION)],
    )
    assert (reply.status, grpc_stack.backend_requests()) == (401, before)
    assert decision_for(grpc_stack, "/api/twice")["reason"] == "token_duplicated"


@pytest.mark.parametrize("service", ["", SERVICE_NAME])
def test_the_standard_health_service_says_serving(channel: grpc.Channel, service: str) -> None:
    health: Any = health_pb2_grpc.HealthStub(channel)  # its stubs lack the generated methods
    answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def check(channel: grpc.Channel, route: str | None, headers: dict[str, str]) -> Any:
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method="GET", path="/api/direct", host="api.example.test", scheme="https", headers=headers
    )
    attributes = attribute_context_pb2.AttributeContext(
        request=attribute_context_pb2.AttributeContext.Request(http=http),
        context_extensions={} if route is None else {ROUTE_KEY: route},
    )
    stub = external_auth_pb2_grpc.AuthorizationStub(channel)
    return stub.Check(external_auth_pb2.CheckRequest(attributes=attributes), timeout=5)


def test_a_check_called_directly_is_answered_with_the_routes_policy(channel: grpc.Channel) -> None:
    token_only = {"approov-token": valid_token()}
    assert check(channel, "/auth-binding-off", token_only).status.code == code_pb2.OK
    refused = check(channel, None, token_only)
    assert refused.status.code == code_pb2.PERMISSION_DENIED
    assert refused.denied_response.status.code == 401


@pytest.mark.parametrize(
    "headers",
    [{}, {"approov-token": ""}, {"approov-token": "\x7f" * 70_000}, {":path": "x", "": ""}],
    ids=["none", "empty", "huge", "odd-names"],
)
def test_nothing_a_client_sends_makes_a_grpc_error(
    channel: grpc.Channel, headers: dict[str, str]
) -> None:
    assert check(channel, "/auth", headers).denied_response.status.code == 401


def test_an_unknown_approov_route_is_refused_as_route_unknown(
    grpc_stack: ProxiedStack, channel: grpc.Channel
) -> None:
    """A configuration error: denied (never an allow, never a gRPC error) and logged."""
    answer = check(channel, "/auth-binding-never", {"approov-token": valid_token()})
    reasons = {h.header.key: h.header.value for h in answer.denied_response.headers}
    assert reasons == {"x-approov-reason": "route_unknown"}
    assert "is not a check path" in grpc_stack.authsvc.log_text()


def test_a_stopping_worker_says_not_serving_answers_checks_while_it_lingers_then_exits(
    tmp_path: Path,
) -> None:
    """SIGTERM: health NOT_SERVING at once, checks still answered for GRPC_LINGER_SECONDS (a
    reload's new workers bind the port meanwhile), then the process is gone well within the
    graceful timeout."""
    address = f"127.0.0.1:{free_port()}"
    server = Authsvc(tmp_path, extra_args=("--grpc-bind", address)).start()
    try:
        with grpc.insecure_channel(address) as opened:
            health: Any = health_pb2_grpc.HealthStub(opened)

            def status() -> Any:
                return health.Check(health_pb2.HealthCheckRequest(), timeout=5).status

            assert status() == health_pb2.HealthCheckResponse.SERVING
            assert server.process is not None
            stopped_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            wait_until(
                lambda: status() == health_pb2.HealthCheckResponse.NOT_SERVING,
                what="NOT_SERVING",
            )
            token_only = {"approov-token": valid_token()}
            assert check(opened, "/auth-binding-off", token_only).status.code == code_pb2.OK
            server.process.wait(timeout=GRPC_LINGER_SECONDS + 10)
            assert time.monotonic() - stopped_at >= GRPC_LINGER_SECONDS
    finally:
        server.stop()


def test_a_signed_body_that_is_not_utf8_reaches_authsvc_as_bytes_and_is_checked(
    grpc_stack: GatewayStack,
) -> None:
    """envoy-grpc.yaml buffers the signed route's body with pack_as_bytes (set on the filter:
    per route alone, Envoy sends text, and these bytes would fail their digest)."""
    body = bytes(range(256)) * 4
    signed = sign(app_request("POST", url(grpc_stack, "/signed/binary"), body=body))
    reply = deliver(grpc_stack, signed)
    assert reply.status == 200, reply.body
    assert reply.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
    signed.body = body[::-1]  # same length, same signed digest: only the bytes can tell
    assert deliver(grpc_stack, signed).status == 401
    assert decision_for(grpc_stack, "/signed/binary")["reason"] == "content_digest_mismatch"
