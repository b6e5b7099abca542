"""End to end through a real nginx running the shipped files, the real server and a backend:
what is particular to nginx. The checks every proxy must pass, nginx included, are in
test_gateways.py."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from demo import nginx
from demo.processes import free_port
from tests.e2e.app_requests import AUTHORIZATION, METHODS, approov
from tests.e2e.servers import Authsvc, Backend, Nginx, Stack, backend_requests, send
from tests.support.tokens import OTHER_SECRET, bound_token, token
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("nginx_available")]

SHIPPED = Path(__file__).resolve().parents[2] / "nginx"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("stack"))
    yield running
    running.stop()


# --- static checks of every shipped file -----------------------------------------------------


@pytest.mark.parametrize("auth_cache", [False, True], ids=["as-shipped", "with-auth-cache"])
def test_shipped_configs_pass_nginx_t(tmp_path: Path, auth_cache: bool) -> None:
    nginx.render(
        tmp_path, nginx.Ports(free_port(), free_port(), free_port()), auth_cache=auth_cache
    )
    result = subprocess.run(
        nginx.command(tmp_path, "-t"), capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.parametrize("auth_cache", [False, True], ids=["as-shipped", "with-auth-cache"])
def test_shipped_configs_have_no_gixy_findings(tmp_path: Path, auth_cache: bool) -> None:
    # The shipped ports, not random ones: gixy takes any `listen` containing "443" for TLS.
    main = nginx.render(tmp_path, nginx.Ports(), auth_cache=auth_cache)
    gixy = Path(sys.executable).with_name("gixy")
    result = subprocess.run(
        [str(gixy), "--format", "json", str(main)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    findings = json.loads(result.stdout)
    assert findings == [], json.dumps(findings, indent=1)


def _locations(conf: str) -> Iterator[tuple[str, str]]:
    """(location header, body) of each top-level location in a shipped file (no nesting)."""
    for match in re.finditer(r"location\s+([^{]+)\{((?:[^{}]|\{[^{}]*\})*)\}", conf):
        yield match.group(1).strip(), match.group(2)


def test_no_protected_location_in_the_example_uses_return() -> None:
    """`return` runs in the rewrite phase, before auth_request: it would skip the check."""
    protected = 0
    for name, body in _locations((SHIPPED / "example.conf").read_text()):
        if "auth_request off;" in body:
            continue
        protected += 1
        assert not re.search(r"^\s*return\b", body, re.M), f"location {name} returns before auth"
    assert protected >= 3


# --- allow: the request reaches the backend intact -------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize("size", [0, 1, 65_536, 10 * 1024 * 1024])
def test_request_body_reaches_the_backend_byte_for_byte(
    stack: Stack, method: str, size: int
) -> None:
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    reply = stack.send(method, "/api/upload", approov(), body)
    assert reply.status == 200
    seen = reply.json()
    assert (seen["body_bytes"], seen["body_sha256"]) == (size, hashlib.sha256(body).hexdigest())


# --- deny: 401 and the backend never sees the request -----------------------------------------


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("missing token", {"Authorization": AUTHORIZATION}),
        ("invalid signature", approov(bound_token(AUTHORIZATION.encode(), secret=OTHER_SECRET))),
        ("expired", approov(bound_token(AUTHORIZATION.encode(), ttl=-60))),
        ("malformed", approov("not-a-token")),
        ("wrongly bound", approov(bound_token(b"Bearer someone-else"))),
        ("binding header missing", approov(authorization=None)),
        ("control byte in the token", approov("a\x01b")),
        ("non-ASCII in the token", approov("\u00e9\u00ff")),
    ],
)
@pytest.mark.parametrize("method", METHODS)
def test_denied_request_gets_401_and_never_reaches_the_backend(
    stack: Stack, case: str, headers: dict[str, str], method: str
) -> None:
    before = stack.backend_requests()
    body = b"payload" if method in {"POST", "PUT", "PATCH"} else None
    reply = stack.send(method, "/api/items", headers, body)
    assert reply.status == 401, case
    if method != "HEAD":
        assert reply.json() == {"error": "unauthorized", "request_id": reply.json()["request_id"]}
    assert stack.backend_requests() == before


def test_denial_body_is_ours_not_the_backend_response(stack: Stack) -> None:
    reply = stack.send("GET", "/api/items", {"Authorization": AUTHORIZATION})
    assert reply.headers["Content-Type"] == "application/json"
    assert b"request" not in reply.body.replace(b"request_id", b"")


# --- policies per location ---------------------------------------------------------------------


def test_binding_location_denies_a_token_without_authorization(stack: Stack) -> None:
    assert stack.send("GET", "/api/items", approov(token(), authorization=None)).status == 401


def test_default_location_uses_authsvcs_default_policy(stack: Stack) -> None:
    assert stack.send("GET", "/anything", approov()).status == 200
    assert stack.send("GET", "/anything", approov(token())).status == 401  # no pay: required


def test_internal_auth_locations_cannot_be_called_by_a_client(stack: Stack) -> None:
    for path in ("/_approov/auth", "/_approov/auth/binding-off"):
        assert stack.send("GET", path, approov()).status in {401, 404}


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Original-URI": "/_approov/auth/binding-off"},
        {"X-Approov-Policy": "off"},
        {"X-Original-URL": "http://x/login"},
    ],
)
def test_client_headers_cannot_weaken_the_policy(stack: Stack, headers: dict[str, str]) -> None:
    assert stack.send("GET", "/api/items", {**approov(token()), **headers}).status == 401


# --- nginx's access log ----------------------------------------------------------------------


def test_access_log_records_the_approov_reason_and_request_id(stack: Stack) -> None:
    reply = stack.send("GET", "/api/log-check", approov(bound_token(b"Bearer x")))
    request_id = reply.json()["request_id"]
    wait_until(lambda: f"request_id={request_id}" in stack.nginx.access_log(), what="the line")
    line = next(x for x in stack.nginx.access_log().splitlines() if request_id in x)
    assert "approov=binding_mismatch" in line
    assert "auth_status=401" in line


# --- ingress-nginx-shaped auth location --------------------------------------------------------


def test_ingress_shaped_auth_url_allows_and_denies(stack: Stack) -> None:
    port = stack.ingress_port
    allowed = stack.send("POST", "/v1/orders?x=1", approov(), b"order", port=port)
    assert allowed.status == 200
    assert allowed.json()["approov_did"] == ["device-42"]
    before = stack.backend_requests()
    assert stack.send("POST", "/v1/orders", approov("bad"), b"order", port=port).status == 401
    assert stack.send("GET", "/v1/orders", {}, port=port).status == 401
    assert stack.backend_requests() == before


def test_ingress_shaped_request_is_logged_with_the_original_url_and_method(
    stack: Stack,
) -> None:
    stack.send("DELETE", "/v1/ingress-log-check", approov(), port=stack.ingress_port)
    # ingress-nginx's own X-Original-URL is logged (a client's X-Original-URI can pass it).
    url = f"http://127.0.0.1:{stack.ingress_port}/v1/ingress-log-check"
    expected = f'"method": "DELETE", "uri": "{url}"'
    wait_until(lambda: expected in stack.authsvc.log_text(), what=expected)


# --- failures: fail closed --------------------------------------------------------------------


def test_authsvc_down_gives_a_503_with_retry_after_and_ingress_a_500(tmp_path: Path) -> None:
    """The include's answer when authsvc is unreachable (refused, backend untouched, recovery:
    test_gateways.py), and what ingress-nginx's own auth location gives instead."""
    stack = Stack(tmp_path)
    try:
        stack.authsvc.stop()
        down = stack.send("POST", "/api/x", approov(), b"data")
        assert (down.status, down.headers["Retry-After"]) == (503, "5")
        assert down.json()["error"] == "authentication_unavailable"
        # ingress-nginx's own auth location has no such mapping: the controller answers 500.
        assert stack.send("GET", "/v1/x", approov(), port=stack.ingress_port).status == 500
    finally:
        stack.stop()


class _StubAuth(BaseHTTPRequestHandler):
    """An auth server that answers what a test asks of it, late if asked."""

    status = 500
    delay = 0.0

    def do_GET(self) -> None:
        # A server that honours Content-Length waits for the announced body, as most do.
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.delay)
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextlib.contextmanager
def stub_auth_stack(
    tmp_path: Path, status: int, delay: float = 0.0, subrequest_edit: tuple[str, str] = ("", "")
) -> Iterator[tuple[nginx.Ports, Backend]]:
    """nginx with the shipped files in front of a stub auth server and the demo backend."""
    handler = type("Stub", (_StubAuth,), {"status": status, "delay": delay})
    stub = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    backend = Backend(tmp_path).start()
    ports = nginx.Ports(free_port(), stub.server_address[1], backend.port)
    proxy = Nginx(tmp_path / "nginx", ports)
    subrequest = proxy.prefix / "conf" / "snippets" / "approov-subrequest.conf"
    old, new = subrequest_edit
    assert old in subrequest.read_text()
    subrequest.write_text(subrequest.read_text().replace(old, new))
    proxy.start()
    try:
        yield ports, backend
    finally:
        proxy.stop()
        backend.stop()
        stub.shutdown()
        stub.server_close()


@pytest.mark.parametrize(
    ("status", "delay"), [(500, 0.0), (502, 0.0), (404, 0.0), (302, 0.0), (204, 5.0)]
)
def test_unexpected_or_slow_authsvc_answer_gives_503_and_never_reaches_the_backend(
    tmp_path: Path, status: int, delay: float
) -> None:
    with stub_auth_stack(tmp_path, status, delay) as (ports, backend):
        started = time.monotonic()
        reply = send(ports.nginx, "GET", "/api/x", approov())
        assert reply.status == 503
        assert time.monotonic() - started < 8
        assert backend_requests(backend) == 0


@pytest.mark.parametrize("keep_the_line", [True, False])
def test_empty_content_length_keeps_an_auth_server_from_waiting_for_a_body(
    tmp_path: Path, keep_the_line: bool
) -> None:
    """The trap: without `proxy_set_header Content-Length ""` nginx announces the client's body
    length on a subrequest that has none, and a server that honours it waits (to the timeout)."""
    line = 'proxy_set_header Content-Length "";'
    edit = ("", "") if keep_the_line else (line, "")
    with stub_auth_stack(tmp_path, 204, subrequest_edit=edit) as (ports, _backend):
        started = time.monotonic()
        reply = send(ports.nginx, "POST", "/api/x", approov(), b"a body of 24 bytes......")
        elapsed = time.monotonic() - started
    if keep_the_line:
        assert (reply.status, elapsed < 1) == (200, True)
    else:
        assert (reply.status, elapsed >= 2) == (503, True)


# --- an auth URI the include does not define -------------------------------------------------

STALE_POLICY_SITE = """
    server {{
        listen 127.0.0.1:{port};
        include snippets/approov.conf;
        location / {{
            auth_request /_approov/auth/binding-off;  # the name before /_approov/auth-binding-off
            proxy_pass http://127.0.0.1:{backend};
        }}
    }}
"""


def test_an_auth_uri_the_include_does_not_define_fails_closed(tmp_path: Path) -> None:
    """Without the include's internal `/_approov/` location, an old or mistyped auth URI would
    be served by the server's own `location /`: the backend's 200 would allow every request."""
    backend = Backend(tmp_path).start()
    port = free_port()
    site = STALE_POLICY_SITE.format(port=port, backend=backend.port)
    proxy = Nginx(tmp_path / "nginx", nginx.Ports(free_port(), free_port(), backend.port), site)
    proxy.start()
    try:
        before = backend_requests(backend)
        assert send(port, "GET", "/api/x", approov()).status == 500
        assert backend_requests(backend) == before
    finally:
        proxy.stop()
        backend.stop()


HSTS_SITE = """
    server {{
        listen 127.0.0.1:{port};
        add_header Strict-Transport-Security "max-age=63072000" always;
        include snippets/approov.conf;
        location / {{
            proxy_set_header X-Approov-Did $approov_did;
            proxy_pass http://127.0.0.1:{backend};
        }}
    }}
"""


def test_server_level_headers_survive_on_the_401_and_the_503(tmp_path: Path) -> None:
    """An add_header in the include's error locations would drop the server's (HSTS, CORS)."""
    backend = Backend(tmp_path).start()
    authsvc = Authsvc(tmp_path).start()
    port = free_port()
    site = HSTS_SITE.format(port=port, backend=backend.port)
    proxy = Nginx(tmp_path / "nginx", nginx.Ports(free_port(), authsvc.port, backend.port), site)
    proxy.start()
    try:
        denied = send(port, "GET", "/api/x", approov("not-a-token"))
        assert (denied.status, denied.headers["Strict-Transport-Security"]) == (
            401,
            "max-age=63072000",
        )
        assert "Retry-After" not in denied.headers
        authsvc.stop()
        down = send(port, "GET", "/api/x", approov())
        assert (down.status, down.headers["Retry-After"]) == (503, "5")
        assert down.headers["Strict-Transport-Security"] == "max-age=63072000"
    finally:
        proxy.stop()
        authsvc.stop()
        backend.stop()
