"""What only the HAProxy door does, with the real HAProxy (Debian's) running haproxy/haproxy.cfg
and haproxy/approov.lua: the check request the Lua action sends, and a silent or odd authsvc.
(Everything the doors share runs through it in test_gateways.py and test_message_signing.py.)"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from demo import nginx
from demo.gateways import GATEWAYS
from demo.processes import free_port
from tests.conftest import gateway_available
from tests.e2e.app_requests import approov
from tests.e2e.servers import Backend, GatewayProxy, backend_requests, send, send_lines

pytestmark = pytest.mark.e2e


class _StubAuthsvc(BaseHTTPRequestHandler):
    """Records each check's request line and header lines; answers `status` after `delay`."""

    status = 200
    delay = 0.0
    seen: ClassVar[list[tuple[str, list[tuple[str, str]], bytes]]]

    def do_GET(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.requestline, list(self.headers.items()), body))
        time.sleep(self.delay)
        self.send_response(self.status)
        self.send_header("X-Approov-Did", "stub-device")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextlib.contextmanager
def haproxy_before_stub(
    tmp_path: Path, status: int = 200, delay: float = 0.0
) -> Iterator[tuple[int, Backend, list[tuple[str, list[tuple[str, str]], bytes]]]]:
    """The shipped haproxy.cfg in front of a stub authsvc and the demo backend."""
    gateway_available("haproxy")
    seen: list[tuple[str, list[tuple[str, str]], bytes]] = []
    handler = type("Stub", (_StubAuthsvc,), {"status": status, "delay": delay, "seen": seen})
    stub = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    backend = Backend(tmp_path).start()
    ports = nginx.Ports(free_port(), stub.server_address[1], backend.port)
    proxy = GatewayProxy(GATEWAYS["haproxy"], tmp_path / "haproxy", ports).start()
    try:
        yield ports.nginx, backend, seen
    finally:
        proxy.stop()
        backend.stop()
        stub.shutdown()
        stub.server_close()


def test_the_check_carries_every_client_header_and_haproxys_own_request_line_never_a_clients(
    tmp_path: Path,
) -> None:
    forged = [
        ("X-Original-URI", "/forged"),
        ("X-Original-Method", "GET"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "forged.example"),
        ("X-Original-URL", "https://forged.example/x"),
        ("X-Approov-Routed-Host", "forged.example"),
        ("X-Original-Content-Length", "1"),
    ]
    sent = [*approov().items(), ("X-Custom", "one"), ("X-Custom", "two"), *forged]
    with haproxy_before_stub(tmp_path) as (port, _, seen):
        reply = send_lines(port, "POST", "/api/x?q=1", sent, b"a body")
        assert reply.status == 200
        assert reply.json()["approov_did"] == ["stub-device"]
    ((request_line, headers, body),) = seen
    assert (request_line, body) == ("GET /auth-binding-required HTTP/1.1", b"")
    told = [(name.lower(), value) for name, value in headers]
    for name in (
        "x-original-uri",
        "x-original-method",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-original-content-length",
    ):
        assert [value for key, value in told if key == name] == {
            "x-original-uri": ["/api/x?q=1"],
            "x-original-method": ["POST"],
            "x-forwarded-proto": ["http"],
            "x-forwarded-host": [f"127.0.0.1:{port}"],
            "x-original-content-length": ["6"],
        }[name]
    assert [value for key, value in told if key == "x-custom"] == ["one", "two"]
    assert not {"x-original-url", "x-approov-routed-host", "content-length"} & {k for k, _ in told}
    assert [k for k, _ in told].count("approov-token") == 1


@pytest.mark.parametrize(("status", "delay"), [(500, 0.0), (404, 0.0), (302, 0.0), (200, 5.0)])
def test_an_odd_or_silent_authsvc_gives_503_within_the_timeout_and_never_reaches_the_backend(
    tmp_path: Path, status: int, delay: float
) -> None:
    with haproxy_before_stub(tmp_path, status, delay) as (port, backend, _):
        started = time.monotonic()
        reply = send(port, "GET", "/api/x", approov())
        assert (reply.status, reply.headers.get("retry-after")) == (503, "5")
        assert time.monotonic() - started < 3  # APPROOV_AUTHSVC_TIMEOUT_SECONDS is 2
        assert backend_requests(backend) == 0


def test_a_403_from_authsvc_is_a_401_for_the_client(tmp_path: Path) -> None:
    with haproxy_before_stub(tmp_path, 403) as (port, backend, _):
        assert send(port, "GET", "/api/x", approov()).status == 401
        assert backend_requests(backend) == 0
