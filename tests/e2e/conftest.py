from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture(scope="module", params=["nginx", *sorted(GATEWAYS)])
def gateway(request: pytest.FixtureRequest) -> str:
    """Each proxy authsvc ships a configuration for, in turn."""
    name: str = request.param
    if name == "nginx":
        require(nginx.find_nginx() is not None, nginx.INSTALL_HINT)
    else:
        gateway_available(name)
    return name


def start_stack(gateway: str, root: Path, **authsvc_options: Any) -> ProxiedStack:
    if gateway == "nginx":
        return Stack(root, **authsvc_options)
    return GatewayStack(GATEWAYS[gateway], root, **authsvc_options)


@pytest.fixture(scope="module")
def stack(gateway: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedStack]:
    """The backend and authsvc behind `gateway` running its shipped file."""
    running = start_stack(gateway, tmp_path_factory.mktemp(gateway))
    yield running
    running.stop()
