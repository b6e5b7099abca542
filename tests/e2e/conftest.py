from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from demo import nginx
from demo.gateways import GATEWAYS
from tests.conftest import gateway_available, require
from tests.e2e.servers import Authsvc, GatewayStack, ProxiedStack, Stack


@pytest.fixture(scope="module")
def authsvc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authsvc]:
    server = Authsvc(tmp_path_factory.mktemp("authsvc")).start()
    yield server
    server.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@dataclass(frozen=True)
class FrontDoor:
    """A proxy authsvc ships a configuration for, as the e2e tests run it."""

    available: Callable[[], None]
    """Skips the test (fails it in CI) with an install hint where the proxy is missing."""
    start: Callable[..., ProxiedStack]
    """(root, **authsvc options) -> the backend and authsvc behind the shipped file."""
    unavailable_status: int
    """What it answers when authsvc cannot be reached: nginx and Envoy as their shipped files
    choose (the include's map, status_on_error), Caddy as forward_auth does."""
    checks_the_body: bool
    """Its shipped file has authsvc check a signed body against its Content-Digest before the
    backend sees it (Envoy forwards the body; nginx's auth_request, Caddy's forward_auth never
    send it)."""


def _gateway(name: str, unavailable_status: int, checks_the_body: bool) -> FrontDoor:
    return FrontDoor(
        partial(gateway_available, name),
        partial(GatewayStack, GATEWAYS[name]),
        unavailable_status,
        checks_the_body,
    )


FRONT_DOORS = {
    "nginx": FrontDoor(
        lambda: require(nginx.find_nginx() is not None, nginx.INSTALL_HINT), Stack, 503, False
    ),
    "envoy": _gateway("envoy", 503, checks_the_body=True),
    "envoy-grpc": _gateway("envoy-grpc", 503, checks_the_body=True),
    "caddy": _gateway("caddy", 502, checks_the_body=False),
    "haproxy": _gateway("haproxy", 503, checks_the_body=False),
}


@pytest.fixture(scope="module", params=sorted(FRONT_DOORS))
def gateway(request: pytest.FixtureRequest) -> str:
    """Each proxy authsvc ships a configuration for, in turn."""
    name: str = request.param
    FRONT_DOORS[name].available()
    return name


def start_stack(gateway: str, root: Path, **authsvc_options: Any) -> ProxiedStack:
    return FRONT_DOORS[gateway].start(root, **authsvc_options)


@pytest.fixture(scope="module")
def stack(gateway: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedStack]:
    """The backend and authsvc behind `gateway` running its shipped file."""
    running = start_stack(gateway, tmp_path_factory.mktemp(gateway))
    yield running
    running.stop()
