"""The real `authsvc serve` (gunicorn managing uvicorn workers) over real sockets."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.servers import Authsvc, exchange
from tests.support.tokens import OTHER_SECRET, bound_token
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def request(path: str, headers: list[tuple[bytes, bytes]], method: bytes = b"GET") -> bytes:
    lines = [method + b" " + path.encode() + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def valid_headers(authorization: bytes = b"Bearer abc") -> list[tuple[bytes, bytes]]:
    return [
        (b"Approov-Token", bound_token(authorization).encode()),
        (b"Authorization", authorization),
    ]


def test_real_server_allows_a_valid_token_and_denies_an_invalid_one(authsvc: Authsvc) -> None:
    assert exchange(authsvc.port, request("/auth", valid_headers())) == 204
    forged = [
        (b"Approov-Token", bound_token(b"Bearer abc", secret=OTHER_SECRET).encode()),
        (b"Authorization", b"Bearer abc"),
    ]
    assert exchange(authsvc.port, request("/auth", forged)) == 401


def test_decision_lines_reach_stdout_as_json(authsvc: Authsvc) -> None:
    exchange(authsvc.port, request("/auth", [(b"X-Request-ID", b"e2e-log-check")]))
    wait_until(lambda: '"request_id": "e2e-log-check"' in authsvc.log_text(), what="the line")


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"PATCH", b"DELETE", b"GET"])
def test_content_length_without_a_body_is_answered_at_once(authsvc: Authsvc, method: bytes) -> None:
    """The trap nginx sets without `proxy_set_header Content-Length ""`: never wait for it."""
    raw = request("/auth", [*valid_headers(), (b"Content-Length", b"1000")], method)
    assert exchange(authsvc.port, raw) == 204


def test_body_on_a_keepalive_connection_does_not_confuse_the_next_request(
    authsvc: Authsvc,
) -> None:
    first = request("/auth", [*valid_headers(), (b"Content-Length", b"5")], b"POST") + b"hello"
    second = request("/auth", [])
    with socket.create_connection(("127.0.0.1", authsvc.port), timeout=2) as conn:
        conn.sendall(first + second)
        received = b""
        while received.count(b"HTTP/1.1 ") < 2:
            chunk = conn.recv(4096)
            assert chunk, received
            received += chunk
    assert received.startswith(b"HTTP/1.1 204")
    assert b"HTTP/1.1 401" in received


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("non-ASCII token", [(b"Approov-Token", b"\xc3\xa9\xff\x80")]),
        ("non-ASCII binding", [(b"Approov-Token", b"a.b.c"), (b"Authorization", b"Bearer \xff")]),
        ("tab inside token", [(b"Approov-Token", b"a\tb")]),
        ("8 KB token", [(b"Approov-Token", b"a" * 8192)]),
        ("60 KB token", [(b"Approov-Token", b"a" * 60_000)]),
        ("150 headers", [(b"X-H%d" % i, b"v") for i in range(150)]),
        ("1000 headers", [(b"X-H%d" % i, b"v") for i in range(1000)]),
        ("duplicate tokens", [(b"Approov-Token", b"a"), (b"Approov-Token", b"a")]),
        ("empty token", [(b"Approov-Token", b"")]),
        ("Bearer in token header", [(b"Approov-Token", b"Bearer a.b.c")]),
        ("8 KB original URI", [(b"X-Original-URI", b"/" + b"a" * 8000)]),
    ],
)
def test_anything_nginx_can_forward_gets_401_never_4xx_5xx_or_a_hang(
    authsvc: Authsvc, case: str, headers: list[tuple[bytes, bytes]]
) -> None:
    assert exchange(authsvc.port, request("/auth", headers)) == 401, case


STANDARD_METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS", b"TRACE"]
WEBDAV_METHODS = [b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK"]


@pytest.mark.parametrize("method", STANDARD_METHODS + WEBDAV_METHODS + [b"SEARCH", b"REPORT"])
def test_every_standard_and_webdav_method_gets_allow_or_401(
    authsvc: Authsvc, method: bytes
) -> None:
    """Proxies send the client's method (Envoy) or GET (nginx, Caddy, Traefik): never a 405."""
    assert exchange(authsvc.port, request("/auth", [], method)) == 401
    assert exchange(authsvc.port, request("/auth/x", valid_headers(), method)) == 200


@pytest.mark.parametrize(
    ("token", "authorization"),
    [
        (b"%s ", b"Bearer abc"),
        (b"%s\t", b"Bearer abc"),
        (b" %s  ", b"Bearer abc \t"),
        (b"%s", b"Bearer abc  "),
    ],
)
def test_whitespace_around_the_token_and_binding_is_not_part_of_them(
    authsvc: Authsvc, token: bytes, authorization: bytes
) -> None:
    """RFC 9110 5.5; httptools passes trailing whitespace on, gunicorn's parser did not."""
    valid = bound_token(b"Bearer abc").encode()
    headers = [(b"Approov-Token", token % valid), (b"Authorization", authorization)]
    assert exchange(authsvc.port, request("/auth", headers)) == 204


@pytest.mark.parametrize(
    ("case", "raw"),
    [
        ("control byte in a value", request("/auth", [(b"Approov-Token", b"a\x01b")])),
        ("NUL in a value", request("/auth", [(b"Approov-Token", b"a\x00b")])),
        ("space in a header name", request("/auth", [(b"Approov Token", b"a")])),
        ("lower-case method", request("/auth", [], b"get")),
        ("a method the HTTP parser does not know", request("/auth", [], b"FOO")),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
    ],
)
def test_malformed_http_is_refused_by_the_http_layer_without_5xx_or_hang(
    authsvc: Authsvc, case: str, raw: bytes
) -> None:
    """Malformed HTTP (nginx never forwards these) may get 4xx or a close; never 5xx or a hang."""
    status = exchange(authsvc.port, raw)
    assert status is None or 400 <= status < 500, case


def test_a_stalled_client_does_not_delay_other_requests(authsvc: Authsvc) -> None:
    stalled = [socket.create_connection(("127.0.0.1", authsvc.port)) for _ in range(20)]
    try:
        for conn in stalled:
            conn.sendall(b"GET /auth HTTP/1.1\r\nHost: x\r\nApproov-To")
        started = time.monotonic()
        assert exchange(authsvc.port, request("/auth", valid_headers())) == 204
        assert time.monotonic() - started < 1.0
    finally:
        for conn in stalled:
            conn.close()


def test_healthz_and_readyz_answer_200_once_the_server_is_ready(authsvc: Authsvc) -> None:
    assert exchange(authsvc.port, request("/healthz", [])) == 200
    assert exchange(authsvc.port, request("/readyz", [])) == 200


def test_serve_refuses_to_start_on_bad_config_with_every_problem_and_no_traceback(
    workdir: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "authsvc", "serve", "--bind", "127.0.0.1:1"],
        env={
            "PATH": "/usr/bin:/bin",
            "APPROOV_BASE64_SECRET": "c2hvcnQ=",
            "APPROOV_ALLOW_STATUS": "302",
        },
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("authsvc: configuration has 2 problems:")
    assert "Traceback" not in result.stderr


def test_authsvc_console_script_serves(workdir: Path) -> None:
    """`authsvc serve`, as the README says after `pip install -e .`."""
    script = Path(sys.executable).with_name("authsvc")
    assert script.exists(), "authsvc is not installed in this environment"
    server = Authsvc(workdir, workers=1, command=(str(script),))
    server.start()
    try:
        assert exchange(server.port, request("/auth", valid_headers())) == 204
    finally:
        server.stop()
