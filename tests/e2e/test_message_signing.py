"""Approov message signing through every shipped proxy: a real nginx, Envoy and Caddy, each with
its shipped file (route `/signed/` = token and a valid `install` signature), in front of the
real `authsvc serve` and a counting backend. Requests are signed by an independent RFC 9421
signer (tests.support.signatures) with Approov's test installation key."""

from __future__ import annotations

import hashlib
import http.client
import re
import shutil
import subprocess
from collections.abc import Sequence

import pytest

from tests.conftest import require
from tests.e2e.app_requests import AUTHORIZATION
from tests.e2e.conftest import FRONT_DOORS
from tests.e2e.servers import ProxiedStack, Reply, Stack
from tests.e2e.test_gateways import decision_for
from tests.support.signatures import SDK_COMPONENTS, Request, ipk_token, request, sign
from tests.support.tokens import pay_for, token

pytestmark = pytest.mark.e2e


# The SDK covers Authorization when the request has one.
COMPONENTS = (*SDK_COMPONENTS, "authorization")


def url(stack: ProxiedStack, target: str) -> str:
    return f"http://127.0.0.1:{stack.port}{target}"


def app_request(
    method: str,
    target: str,
    *,
    ipk: bool = True,
    body: bytes | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> Request:
    """An app's call to the shipped `/signed/` route: its token carries the installation key
    and is bound to its Authorization (the route keeps authsvc's default binding policy)."""
    pay = pay_for(AUTHORIZATION.encode())
    return request(
        method,
        target,
        token_value=ipk_token(pay=pay) if ipk else token(pay=pay),
        headers=[("Authorization", AUTHORIZATION), *headers],
        body=body,
    )


def deliver(
    stack: ProxiedStack,
    signed: Request,
    *,
    target: str | None = None,
    method: str | None = None,
    extra: dict[str, str] | None = None,
) -> Reply:
    """Send `signed` through the proxy, optionally to another target or with another method
    than it was signed for."""
    path = target if target is not None else signed.url.split(str(stack.port), 1)[1]
    headers = {**dict(signed.headers.items()), **(extra or {})}
    return stack.send(method or signed.method, path, headers, signed.body)


def refused(stack: ProxiedStack, reply: Reply, before: int, reason: str, uri: str) -> None:
    assert reply.status == 401, reply.body
    assert stack.backend_requests() == before, "a refused request reached the backend"
    assert decision_for(stack, uri)["reason"] == reason


def test_a_signed_request_reaches_the_backend(stack: ProxiedStack) -> None:
    """The SDK's default coverage (method, URL, token) verifies through the proxy."""
    signed = sign(
        app_request("GET", url(stack, "/signed/items/7?colour=red")), components=COMPONENTS
    )
    reply = deliver(stack, signed)
    assert reply.status == 200, reply.body
    assert reply.json()["path"] == "/signed/items/7"
    decision = decision_for(stack, "/signed/items/7?colour=red")
    assert (decision["reason"], decision["signing"]) == ("ok", "required")


def test_a_signed_post_with_body_digest_and_length_reaches_the_backend(
    stack: ProxiedStack,
) -> None:
    """Authorization, Content-Type, Content-Length and Content-Digest covered, as the SDKs do
    when the request has them: each proxy gets the client's values to authsvc."""
    body = b'{"shape": "circle"}'
    signed = sign(
        app_request(
            "POST",
            url(stack, "/signed/orders"),
            body=body,
            headers=[("Content-Type", "application/json")],
        ),
        components=(*COMPONENTS, "content-type", "content-length"),
    )
    reply = deliver(stack, signed)
    assert reply.status == 200, reply.body
    assert reply.json()["body_sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("method", "message_signature_mismatch"),
        ("path", "message_signature_mismatch"),
        ("query", "message_signature_mismatch"),
        ("host", "message_signature_mismatch"),
        ("authorization", "binding_mismatch"),  # the token's own binding goes first
        ("unsigned", "message_signature_missing"),
        ("token-without-ipk", "ipk_missing"),
    ],
)
def test_a_changed_request_is_refused_before_the_backend(
    stack: ProxiedStack, change: str, reason: str
) -> None:
    """A signature lifted onto another request (a replay with one thing changed) is refused."""
    target = f"/signed/{change}?page=1"
    signed = sign(
        app_request("GET", url(stack, target), ipk=change != "token-without-ipk"),
        components=COMPONENTS,
    )
    sent_target, method, extra = target, None, {}
    if change == "method":
        method = "DELETE"
    elif change == "path":
        sent_target = f"/signed/{change}x?page=1"
    elif change == "query":
        sent_target = f"/signed/{change}?page=2"
    elif change == "host":
        extra = {"Host": f"localhost:{stack.port}"}
    elif change == "authorization":
        extra = {"Authorization": "Bearer someone-else"}
    elif change == "unsigned":
        del signed.headers["Signature"]
    before = stack.backend_requests()
    reply = deliver(stack, signed, target=sent_target, method=method, extra=extra)
    refused(stack, reply, before, reason, sent_target)


# What the client's forged headers below meet: nginx passes a client's X-Forwarded-Uri and
# -Method on, which then disagree with its own X-Original-*, as Envoy's gRPC check hands every
# client header over beside the client's own method and path; Caddy and Envoy over HTTP replace
# or drop every one of them, so the replayed signature simply does not fit.
FORGED_HEADERS_REFUSED_AS = {
    "nginx": "message_target_unknown",
    "caddy": "message_signature_mismatch",
    "envoy": "message_signature_mismatch",
    "envoy-grpc": "message_target_unknown",
    "haproxy": "message_signature_mismatch",
}


def test_forged_proxy_headers_cannot_make_a_replayed_signature_fit(
    stack: ProxiedStack, gateway: str
) -> None:
    """The URL authsvc rebuilds comes from what the proxy sets, never from the client's copies of
    those headers: a signature for /signed/a replayed on /signed/b with every header that could
    name /signed/a is still refused."""
    signed = sign(app_request("GET", url(stack, "/signed/a")), components=COMPONENTS)
    forged = {
        "X-Original-URI": "/signed/a",
        "X-Original-Method": "GET",
        "X-Forwarded-Uri": "/signed/a",
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Host": f"127.0.0.1:{stack.port}",
        "X-Forwarded-Proto": "http",
    }
    before = stack.backend_requests()
    reply = deliver(stack, signed, target="/signed/b", extra=forged)
    refused(stack, reply, before, FORGED_HEADERS_REFUSED_AS[gateway], "/signed/b")


def test_a_forged_scheme_is_not_believed(stack: ProxiedStack) -> None:
    """A client claiming https through a plain-http listener signs a URL the proxy never
    served: the proxy's own scheme goes into the URL authsvc rebuilds."""
    signed = sign(
        app_request("GET", url(stack, "/signed/scheme").replace("http:", "https:")),
        components=COMPONENTS,
    )
    before = stack.backend_requests()
    reply = deliver(stack, signed, target="/signed/scheme", extra={"X-Forwarded-Proto": "https"})
    refused(stack, reply, before, "message_signature_mismatch", "/signed/scheme")


def test_a_body_changed_under_a_valid_signature_is_refused_only_where_the_body_is_sent(
    stack: ProxiedStack, gateway: str
) -> None:
    """The body changed after signing, its signed digest kept: refused where the shipped file
    sends authsvc the body (Envoy); elsewhere it reaches the backend, as the README says, and
    the backend must check the digest itself."""
    signed = sign(
        app_request("POST", url(stack, "/signed/tampered"), body=b'{"amount": 1}'),
        components=COMPONENTS,
    )
    signed.body = b'{"amount": 9}'  # same length, so only the digest can tell
    before = stack.backend_requests()
    reply = deliver(stack, signed)
    if FRONT_DOORS[gateway].checks_the_body:
        refused(stack, reply, before, "content_digest_mismatch", "/signed/tampered")
    else:
        assert reply.status == 200
        assert reply.json()["body_sha256"] == hashlib.sha256(b'{"amount": 9}').hexdigest()


def test_routes_without_signing_are_unchanged(stack: ProxiedStack) -> None:
    """Signing is per route: /login (token only) takes an unsigned token that carries ipk."""
    reply = stack.send("GET", "/login", {"Approov-Token": ipk_token()})
    assert reply.status == 200


@pytest.mark.parametrize("gateway", ["nginx"], indirect=True)
def test_ingress_nginx_a_signed_request_passes_and_a_forged_original_uri_does_not(
    stack: ProxiedStack,
) -> None:
    """ingress-nginx sends its own X-Original-URL (scheme, host and raw URI) but passes a
    client's X-Original-URI through when no auth-method is set: the two disagree, so the
    forger's request is refused as unknown."""
    assert isinstance(stack, Stack)  # its ingress-shaped site
    port = stack.ingress_port
    signed = sign(
        request("GET", f"http://127.0.0.1:{port}/signed/a?x=1"), components=COMPONENTS[:3]
    )
    reply = stack.send("GET", "/signed/a?x=1", dict(signed.headers.items()), port=port)
    assert reply.status == 200, reply.body
    before = stack.backend_requests()
    forged = {**dict(signed.headers.items()), "X-Original-URI": "/signed/a?x=1"}
    reply = stack.send("GET", "/signed/b", forged, port=port)
    refused(stack, reply, before, "message_target_unknown", f"http://127.0.0.1:{port}/signed/b")


@pytest.mark.parametrize("gateway", ["envoy"], indirect=True)
def test_envoy_checks_the_normalised_path_so_a_url_signed_with_dot_segments_is_denied(
    stack: ProxiedStack,
) -> None:
    """envoy.yaml routes on the normalised path (a client's `..` cannot pick a weaker route),
    and the check carries that path: what the app signed raw no longer matches."""
    signed = sign(app_request("GET", url(stack, "/signed/x/../y")), components=COMPONENTS)
    before = stack.backend_requests()
    reply = deliver(stack, signed)
    refused(stack, reply, before, "message_signature_mismatch", "/signed/y")


def test_an_authority_with_the_default_port_is_the_url_the_app_signed(stack: ProxiedStack) -> None:
    """RFC 3986 6.2.3: `Host: API.Example.test:80` over http is `http://api.example.test`, the
    form the SDKs sign; authsvc rebuilds the URL normalised whichever header carried the host."""
    signed = sign(
        app_request("GET", "http://api.example.test/signed/normalised"), components=COMPONENTS
    )
    headers = {**dict(signed.headers.items()), "Host": "API.Example.test:80"}
    reply = stack.send("GET", "/signed/normalised", headers)
    assert reply.status == 200, reply.body


def send_absolute_form(
    stack: ProxiedStack,
    authority: str,
    target: str,
    headers: dict[str, str],
    port: int | None = None,
) -> Reply:
    """A GET whose request line names `authority` (RFC 9112 3.2.2 absolute-form), with
    `headers` as given (their Host too)."""
    connection = http.client.HTTPConnection("127.0.0.1", port or stack.port, timeout=10)
    try:
        connection.putrequest(
            "GET", f"http://{authority}{target}", skip_host=True, skip_accept_encoding=True
        )
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


# A proxy routes an absolute-form request by its request line's authority; nginx alone also
# forwards the Host header it did not route by, and authsvc refuses the two disagreeing.
# HAProxy refuses the request itself (400) when its Host is not the request line's authority.
ANOTHER_HOST_REFUSED_AS: dict[str, str | None] = {
    "nginx": "message_target_unknown",
    "caddy": "message_signature_mismatch",
    "envoy": "message_signature_mismatch",
    "envoy-grpc": "message_signature_mismatch",
    "haproxy": None,
}


def test_a_request_signed_for_one_host_is_refused_when_the_request_line_names_another(
    stack: ProxiedStack, gateway: str
) -> None:
    """RFC 9112 3.2.2: the request line's authority wins over Host, and the proxy routes by it
    (nginx: to the `a.example` server block). A request signed for the Host's authority,
    replayed in absolute-form to another host with that Host kept, is refused: the URL authsvc
    checks is the one the proxy routed."""
    signed = sign(app_request("GET", url(stack, "/signed/vhost")), components=COMPONENTS)
    headers = {**dict(signed.headers.items()), "Host": f"127.0.0.1:{stack.port}"}
    before = stack.backend_requests()
    reply = send_absolute_form(stack, f"a.example:{stack.port}", "/signed/vhost", headers)
    reason = ANOTHER_HOST_REFUSED_AS[gateway]
    if reason is None:
        assert (reply.status, stack.backend_requests()) == (400, before)
    else:
        refused(stack, reply, before, reason, "/signed/vhost")


@pytest.mark.parametrize("gateway", ["nginx"], indirect=True)
def test_ingress_nginx_a_request_signed_for_one_host_is_refused_when_sent_to_another(
    stack: ProxiedStack,
) -> None:
    """ingress-nginx's X-Original-URL takes the host from the Host header; the routed host
    (auth-proxy-set-headers, the example's ConfigMap) is the request line's, and disagrees."""
    assert isinstance(stack, Stack)  # its ingress-shaped site
    port = stack.ingress_port
    signed = sign(request("GET", f"http://127.0.0.1:{port}/signed/v"), components=COMPONENTS[:3])
    headers = {**dict(signed.headers.items()), "Host": f"127.0.0.1:{port}"}
    before = stack.backend_requests()
    reply = send_absolute_form(stack, f"a.example:{port}", "/signed/v", headers, port=port)
    refused(stack, reply, before, "message_target_unknown", f"http://127.0.0.1:{port}/signed/v")


def test_a_request_in_absolute_form_whose_host_agrees_is_allowed(stack: ProxiedStack) -> None:
    signed = sign(app_request("GET", url(stack, "/signed/absolute")), components=COMPONENTS)
    headers = {**dict(signed.headers.items()), "Host": f"127.0.0.1:{stack.port}"}
    reply = send_absolute_form(stack, f"127.0.0.1:{stack.port}", "/signed/absolute", headers)
    assert reply.status == 200, reply.body


def send_h2c(stack: ProxiedStack, authority: str, host: str, target: str, signed: Request) -> int:
    """A GET over HTTP/2 with prior knowledge (nghttp), its `:authority` and `host` as given;
    the response's status, 0 if the proxy reset the stream."""
    require(shutil.which("nghttp") is not None, "`sudo apt-get install nghttp2-client`")
    headers = {**dict(signed.headers.items()), ":authority": authority, "host": host}
    options = [part for name, value in headers.items() for part in ("-H", f"{name}: {value}")]
    url = f"http://127.0.0.1:{stack.port}{target}"
    shown = subprocess.run(
        ["nghttp", "-v", "-n", url, *options],
        check=False,
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout
    status = re.search(r"recv \(stream_id=\d+\) :status: (\d+)", shown)
    return int(status[1]) if status else 0


@pytest.mark.parametrize("gateway", ["envoy"], indirect=True)
def test_over_http2_a_request_signed_for_its_host_header_is_refused_when_authority_differs(
    stack: ProxiedStack,
) -> None:
    """envoy.yaml takes HTTP/2 without TLS (h2c) and routes by `:authority`: a request signed
    for the `host` header's authority, with another `:authority`, is refused; the same request
    signed for its `:authority` passes (Caddy's shipped file takes no h2c: it resets it)."""
    target, host, authority = "/signed/h2", f"b.example:{stack.port}", f"a.example:{stack.port}"
    for_host = sign(app_request("GET", f"http://{host}{target}"), components=COMPONENTS)
    before = stack.backend_requests()
    assert send_h2c(stack, authority, host, target, for_host) == 401
    refused(stack, Reply(401, {}, b""), before, "message_signature_mismatch", target)
    for_authority = sign(app_request("GET", f"http://{authority}{target}"), components=COMPONENTS)
    assert send_h2c(stack, authority, host, target, for_authority) == 200
