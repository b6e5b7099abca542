"""The optional nginx body check (nginx/njs/approov_digest.js with
snippets/approov-body-digest.conf) through a real nginx with its njs module, in front of the real
`authsvc serve` and a counting backend: a signed body reaches the backend only if it is the one
its signed Content-Digest describes."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo import nginx
from demo.processes import free_port
from tests.conftest import require
from tests.e2e.app_requests import AUTHORIZATION
from tests.e2e.servers import REPO_ROOT, Authsvc, Backend, Nginx, ProxiedStack, Reply
from tests.support.signatures import (
    SDK_COMPONENTS,
    Request,
    ipk_token,
    request,
    sign,
    sign_by_hand,
    signed_post,
)
from tests.support.tokens import pay_for
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("nginx_available")]

SITE = """
    js_path {njs};
    js_import approov_digest from approov_digest.js;
    server {{
        listen 127.0.0.1:{port};
        access_log {logs}/body-digest.access.log approov;
        include snippets/approov.conf;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header X-Approov-Did $approov_did;
        location = /healthz {{
            auth_request off;
            return 200;
        }}
        location /signed/ {{
            auth_request /_approov/auth-signing-required;
            set $approov_digest_next @signed_backend;
            include snippets/approov-body-digest.conf;
        }}
        location @signed_backend {{
            auth_request off;
            proxy_pass http://demo_backend;
        }}
        location /misconfigured/ {{
            auth_request off;
            include snippets/approov-body-digest.conf;
        }}
    }}
"""


class BodyCheckStack(ProxiedStack):
    """The shipped include and the body check snippet in a server of their own."""

    nginx: Nginx

    def __init__(self, root: Path) -> None:
        backend, authsvc = Backend(root), Authsvc(root)
        port = free_port()
        ports = nginx.Ports(free_port(), authsvc.port, backend.port)
        site = SITE.format(njs=REPO_ROOT / "nginx" / "njs", port=port, logs=root / "nginx" / "logs")
        proxy = Nginx(root / "nginx", ports, site, extra_main=f"load_module {nginx.NJS_MODULE};")
        shutil.copy(
            REPO_ROOT / "nginx" / "snippets" / "approov-body-digest.conf",
            proxy.prefix / "conf" / "snippets",
        )
        self.nginx = proxy
        super().__init__(backend, authsvc, proxy, port)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BodyCheckStack]:
    require(nginx.NJS_MODULE.exists(), nginx.NJS_INSTALL_HINT)
    running = BodyCheckStack(tmp_path_factory.mktemp("njs"))
    yield running
    running.stop()


def app_post(stack: ProxiedStack, target: str, body: bytes) -> Request:
    """What the app sends: a bound token with `ipk`, Authorization covered by the signature."""
    return signed_post(
        body,
        f"http://127.0.0.1:{stack.port}{target}",
        token_value=ipk_token(pay=pay_for(AUTHORIZATION.encode()), did="device-7"),
        headers=[("Authorization", AUTHORIZATION)],
        components=(*SDK_COMPONENTS, "authorization"),
    )


def send(stack: ProxiedStack, message: Request, target: str) -> Reply:
    return stack.send("POST", target, dict(message.headers.items()), message.body)


def test_a_signed_body_that_matches_its_digest_reaches_the_backend_whole(
    stack: ProxiedStack,
) -> None:
    body = json.dumps({"order": list(range(2000))}).encode()  # several reads from the socket
    reply = send(stack, app_post(stack, "/signed/orders?id=1", body), "/signed/orders?id=1")
    assert reply.status == 200, reply.body
    seen = reply.json()
    assert (seen["path"], seen["query"]) == ("/signed/orders", "id=1")
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert seen["approov_did"] == ["device-7"]  # the check's answer survives the redirect


def test_a_body_changed_under_its_signed_digest_never_reaches_the_backend(
    stack: BodyCheckStack,
) -> None:
    message = app_post(stack, "/signed/pay", b'{"amount": 1}')
    message.body = b'{"amount": 9}'
    before = stack.backend_requests()
    reply = send(stack, message, "/signed/pay")
    assert reply.status == 401
    assert reply.json()["error"] == "unauthorized"
    assert stack.backend_requests() == before
    assert "approov: content_digest_mismatch" in stack.nginx.error_log()


def test_the_access_log_says_what_the_body_check_decided(stack: BodyCheckStack) -> None:
    """authsvc allowed the headers (its decision line says ok), so only nginx's own log can
    tell the refused body: its `approov=` field carries the body check's reason."""
    refused = app_post(stack, "/signed/logged-refused", b'{"amount": 1}')
    refused.body = b'{"amount": 9}'
    assert send(stack, refused, "/signed/logged-refused").status == 401
    passed = app_post(stack, "/signed/logged-passed", b'{"amount": 1}')
    assert send(stack, passed, "/signed/logged-passed").status == 200
    access_log = stack.nginx.prefix / "logs" / "body-digest.access.log"

    def lines_by_uri() -> dict[str, str]:
        lines = {
            line.split('"')[1].split()[1]: line for line in access_log.read_text().splitlines()
        }
        return lines if len(lines) >= 2 else {}

    fields = wait_until(lines_by_uri, what="both access log lines")  # written after the answer
    assert " 401 " in fields["/signed/logged-refused"]
    assert "approov=content_digest_mismatch " in fields["/signed/logged-refused"]
    assert "approov=ok " in fields["/signed/logged-passed"]


def test_the_signature_is_still_checked_first(stack: ProxiedStack) -> None:
    message = app_post(stack, "/signed/a", b"{}")
    before = stack.backend_requests()
    assert send(stack, message, "/signed/b").status == 401
    assert stack.backend_requests() == before


def test_a_body_beyond_the_buffer_is_refused_by_nginx(stack: ProxiedStack) -> None:
    """The check needs the whole body in memory: nginx refuses a larger one (413)."""
    message = app_post(stack, "/signed/big", b"x" * (1024 * 1024 + 1))
    before = stack.backend_requests()
    assert send(stack, message, "/signed/big").status == 413
    assert stack.backend_requests() == before


def test_a_signed_request_without_a_body_goes_on(stack: ProxiedStack) -> None:
    token = ipk_token(pay=pay_for(AUTHORIZATION.encode()))
    url = f"http://127.0.0.1:{stack.port}/signed/list"
    message = sign(
        request("GET", url, token_value=token, headers=[("Authorization", AUTHORIZATION)]),
        components=(*SDK_COMPONENTS, "authorization"),
    )
    assert stack.send("GET", "/signed/list", dict(message.headers.items())).status == 200


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BODY = b'{"shape": "circle"}'


@pytest.mark.parametrize(
    ("digest", "status"),
    [
        (f"sha-512=:{b64(hashlib.sha512(BODY).digest())}:", 200),
        (f'sha-256="{b64(hashlib.sha256(BODY).digest())}"', 200),  # some SDK versions
        (
            f"sha-256=:{b64(hashlib.sha256(BODY).digest())}:, "
            f"sha-512=:{b64(hashlib.sha512(b'other').digest())}:",
            401,
        ),
        ("md5=:AAAA:", 401),  # nothing the check knows: no claim about the body is proven
        ("sha-256", 401),
    ],
    ids=["sha-512", "string-form", "one-of-two-wrong", "unknown-algorithm-only", "not-a-digest"],
)
def test_each_digest_form_as_authsvc_reads_it(
    stack: ProxiedStack, digest: str, status: int
) -> None:
    """The signature covers the digest as sent (signed here by hand: the independent signer
    only makes sha-256); the body check then agrees with authsvc's own (Envoy) rules."""
    token = ipk_token(pay=pay_for(AUTHORIZATION.encode()))
    url = f"http://127.0.0.1:{stack.port}/signed/forms"
    message = request("POST", url, token_value=token, headers=[("Authorization", AUTHORIZATION)])
    message.headers["Content-Digest"] = digest
    signed = sign_by_hand(
        message, (*SDK_COMPONENTS, "authorization", "content-digest"), created=time.time()
    )
    signed.body = BODY
    assert send(stack, signed, "/signed/forms").status == status


def test_without_a_named_location_to_go_on_to_nothing_passes(stack: BodyCheckStack) -> None:
    before = stack.backend_requests()
    assert stack.send("POST", "/misconfigured/x", {}, b"{}").status == 500
    assert stack.backend_requests() == before
    assert "set $approov_digest_next" in stack.nginx.error_log()
