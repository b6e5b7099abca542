"""No header a client sends chooses the method or URL its message signature is checked against,
whatever configuration the user copied: a real Caddy and a real nginx, each with its shipped file
and with the bare configuration a user may write instead (no header stripped), in front of the
real `authsvc serve` and a counting backend.

Each attack replays a valid signature made for another URL or method, with the header that
names that URL or method added by the client. Where the proxy passes the client's header on,
it disagrees with the proxy's own and authsvc refuses the request as `message_target_unknown`;
where the proxy replaces it, the signature does not fit (`message_signature_mismatch`). The
backend is never called, and the same request signed honestly is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from demo import nginx
from demo.gateways import CADDY
from demo.processes import free_port
from tests.conftest import gateway_available, require
from tests.e2e.servers import Authsvc, Backend, GatewayProxy, Nginx, ProxiedStack, Reply
from tests.e2e.test_message_signing import COMPONENTS, app_request, url
from tests.support.signatures import sign
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

TARGET = "/signed/v1/items/7"
OTHER = "/signed/other"


def caddy(root: Path, *, bare: bool) -> ProxiedStack:
    """caddy/Caddyfile, or (`bare`) the same less its `header_up -X-Original-*` lines: Caddy's
    plain forward_auth, which passes on every header the client sent."""
    gateway_available("caddy")
    gateway = CADDY
    if bare:
        shipped = CADDY.shipped.read_text()
        text = re.sub(r"^\s*header_up -X-Original-\S+\n", "", shipped, flags=re.MULTILINE)
        assert text != shipped, "caddy/Caddyfile no longer strips X-Original-*: update this"
        (root / "bare").mkdir()
        gateway = dataclasses.replace(CADDY, shipped=root / "bare" / "Caddyfile")
        gateway.shipped.write_text(text)
    backend, authsvc = Backend(root), Authsvc(root)
    ports = nginx.Ports(free_port(), authsvc.port, backend.port)
    return ProxiedStack(backend, authsvc, GatewayProxy(gateway, root / "caddy", ports), ports.nginx)


def nginx_without_forwarded_headers(root: Path) -> ProxiedStack:
    """The shipped include less its X-Forwarded-* lines, so nginx passes on a client's own;
    scheme and host then come from APPROOV_PUBLIC_BASE_URL, as the README says."""
    require(nginx.find_nginx() is not None, nginx.INSTALL_HINT)
    backend, port = Backend(root), free_port()
    authsvc = Authsvc(root, env={"APPROOV_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"})
    proxy = Nginx(root / "nginx", nginx.Ports(port, authsvc.port, backend.port))
    include = proxy.prefix / "conf" / "snippets" / "approov-subrequest.conf"
    shipped = include.read_text()
    text = re.sub(r"^proxy_set_header X-Forwarded-\S+ .*\n", "", shipped, flags=re.MULTILINE)
    assert text != shipped, "the include no longer sets X-Forwarded-*: update this"
    include.write_text(text)
    return ProxiedStack(backend, authsvc, proxy, port)


# Each configuration, and the headers of the attacks below that it passes on as the client
# sent them (the others it sets itself, replacing the client's).
SETUPS: dict[str, tuple[Callable[[Path], ProxiedStack], frozenset[str]]] = {
    "caddy-bare": (
        lambda root: caddy(root, bare=True),
        frozenset({"X-Original-URI", "X-Original-URL", "X-Original-Method"}),
    ),
    "caddy-shipped": (lambda root: caddy(root, bare=False), frozenset()),
    "nginx-without-x-forwarded": (
        nginx_without_forwarded_headers,
        frozenset({"X-Forwarded-Uri", "X-Forwarded-Method"}),
    ),
}


@pytest.fixture(scope="module", params=sorted(SETUPS))
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ProxiedStack, frozenset[str]]]:
    start, passes = SETUPS[request.param]
    stack = start(tmp_path_factory.mktemp(request.param))
    yield stack, passes
    stack.stop()


@dataclasses.dataclass(frozen=True)
class Attack:
    """Send `method` to TARGET with a signature made for `signed_method` on `signed_url`, and
    `header: value` added by the client."""

    method: str
    signed_method: str
    signed_url: Callable[[ProxiedStack], str]
    header: str
    value: Callable[[ProxiedStack], str]


ATTACKS = {
    "x-original-uri": Attack(
        "GET", "GET", lambda s: url(s, OTHER), "X-Original-URI", lambda s: OTHER
    ),
    "x-original-url": Attack(
        "GET",
        "GET",
        lambda s: "http://evil.example" + OTHER,
        "X-Original-URL",
        lambda s: "http://evil.example" + OTHER,
    ),
    "x-original-method": Attack(
        "DELETE", "GET", lambda s: url(s, TARGET), "X-Original-Method", lambda s: "GET"
    ),
    "x-forwarded-uri": Attack(
        "GET", "GET", lambda s: url(s, OTHER), "X-Forwarded-Uri", lambda s: OTHER
    ),
    "x-forwarded-method": Attack(
        "DELETE", "GET", lambda s: url(s, TARGET), "X-Forwarded-Method", lambda s: "GET"
    ),
}


def send_signed(
    stack: ProxiedStack, method: str, signed_method: str, signed_url: str, extra: dict[str, str]
) -> Reply:
    signed = sign(app_request(signed_method, signed_url), components=COMPONENTS)
    return stack.send(method, TARGET, {**dict(signed.headers.items()), **extra})


def last_decision(stack: ProxiedStack, after: int) -> dict[str, Any]:
    """authsvc's first decision line past the first `after` (written after the answer)."""

    def new_line() -> str | None:
        lines = [line for line in stack.authsvc.log_text().splitlines() if line.startswith("{")]
        return lines[after] if len(lines) > after else None

    return dict(json.loads(wait_until(new_line, what="a decision line")))


def decisions(stack: ProxiedStack) -> int:
    return sum(line.startswith("{") for line in stack.authsvc.log_text().splitlines())


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_client_header_naming_another_url_or_method_never_fits_a_replayed_signature(
    setup: tuple[ProxiedStack, frozenset[str]], name: str
) -> None:
    stack, passes = setup
    attack = ATTACKS[name]
    backend_before, log_before = stack.backend_requests(), decisions(stack)
    reply = send_signed(
        stack,
        attack.method,
        attack.signed_method,
        attack.signed_url(stack),
        {attack.header: attack.value(stack)},
    )
    assert reply.status == 401, reply.body
    assert stack.backend_requests() == backend_before, "a forged request reached the backend"
    expected = "message_target_unknown" if attack.header in passes else "message_signature_mismatch"
    assert last_decision(stack, log_before)["reason"] == expected


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_the_same_request_signed_honestly_is_allowed(
    setup: tuple[ProxiedStack, frozenset[str]], method: str
) -> None:
    stack, _ = setup
    before = stack.backend_requests()
    reply = send_signed(stack, method, method, url(stack, TARGET), {})
    assert reply.status == 200, reply.body
    assert stack.backend_requests() == before + 1
