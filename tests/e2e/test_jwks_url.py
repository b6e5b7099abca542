"""APPROOV_JWKS_URL with the real server: unready until a key set loads, then verifying."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authsvc.store.keysource import MAX_KEY_DOCUMENT_BYTES, fetch_jwks, fetch_url
from tests.e2e.servers import Authsvc
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


class JwksServer:
    """A loopback JWKS endpoint whose document a test can change, or take down (503)."""

    def __init__(self) -> None:
        self.document: bytes | None = None
        self.redirects: dict[str, str] = {}  # path -> Location
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = server.document
                self.send_response(200 if body is not None else 503)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.url = f"{self.origin}/jwks.json"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def publish(self, key: ec.EllipticCurvePrivateKey, kid: str) -> None:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        self.document = json.dumps({"keys": [{**jwk, "kid": kid}]}).encode()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


def status(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get("X-Approov-Reason", "")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("X-Approov-Reason", "")


def es256_token(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, str]:
    tok = jwt.encode({"exp": int(time.time()) + 300}, key, "ES256", headers={"kid": kid})
    return {"Approov-Token": tok}


def test_jwks_url_keys_verify_tokens_from_start_up(jwks: JwksServer, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwks.publish(key, "k1")
    server = Authsvc(tmp_path, env={"APPROOV_JWKS_URL": jwks.url}).start()
    try:
        assert status(f"{server.url}/readyz")[0] == 200
        assert status(f"{server.url}/auth-binding-off", es256_token(key, "k1")) == (204, "ok")
        assert status(f"{server.url}/auth-binding-off", es256_token(key, "k2")) == (
            401,
            "kid_unknown",
        )
    finally:
        server.stop()


def test_unready_and_denying_until_the_jwks_url_answers(jwks: JwksServer, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    server = Authsvc(
        tmp_path, env={"APPROOV_JWKS_URL": jwks.url}, workers=1, keys_loaded=False
    ).start()
    try:
        assert status(f"{server.url}/readyz")[0] == 503
        assert status(f"{server.url}/auth-binding-off", es256_token(key, "k1")) == (
            401,
            "keys_unavailable",
        )
        jwks.publish(key, "k1")
        # Unready workers retry every second.
        wait_until(lambda: status(f"{server.url}/readyz")[0] == 200, 10, "ready")
        assert status(f"{server.url}/auth-binding-off", es256_token(key, "k1")) == (204, "ok")
    finally:
        server.stop()


def test_jwks_url_follows_a_redirect_within_its_origin(jwks: JwksServer) -> None:
    jwks.publish(ec.generate_private_key(ec.SECP256R1()), "k1")
    jwks.redirects["/moved"] = "/jwks.json"
    keys = fetch_jwks(f"{jwks.origin}/moved", 2, fetch_url)
    assert [key.kid for key in keys or []] == ["k1"]


@pytest.mark.parametrize("elsewhere", ["another port", "another host"])
def test_jwks_url_refuses_a_redirect_to_another_origin(
    jwks: JwksServer, elsewhere: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever answers the redirect would choose the keys every token is checked with."""
    attacker = JwksServer()
    try:
        attacker.publish(ec.generate_private_key(ec.SECP256R1()), "attacker")
        port = attacker.http.server_address[1]
        target = (
            attacker.url if elsewhere == "another port" else f"http://localhost:{port}/jwks.json"
        )
        jwks.redirects["/jwks.json"] = target
        assert fetch_jwks(jwks.url, 2, fetch_url) is None
        assert "redirect to another origin refused" in caplog.text
    finally:
        attacker.close()


@pytest.mark.parametrize(
    ("size", "loaded"), [(MAX_KEY_DOCUMENT_BYTES, True), (MAX_KEY_DOCUMENT_BYTES + 1, False)]
)
def test_a_jwks_document_over_1_mib_is_refused_however_valid(
    jwks: JwksServer, size: int, loaded: bool
) -> None:
    """A valid key set padded with JSON whitespace: refused for its size alone (an empty key
    set, as this test once used, is refused for being empty before the cap matters)."""
    jwks.publish(ec.generate_private_key(ec.SECP256R1()), "padded")
    assert jwks.document is not None
    jwks.document += b" " * (size - len(jwks.document))
    assert (fetch_jwks(jwks.url, 2, fetch_url) is not None) is loaded
