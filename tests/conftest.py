from __future__ import annotations

import os

import pytest

from demo import nginx
from demo.gateways import GATEWAYS


def require(found: bool, install_hint: str) -> None:
    """A test that needs a program skips where it is missing, except in CI, where that fails."""
    if found:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run these tests: {install_hint}")
    pytest.skip(install_hint)


@pytest.fixture(scope="session")
def nginx_available() -> None:
    require(nginx.find_nginx() is not None, nginx.INSTALL_HINT)


def gateway_available(name: str) -> None:
    gateway = GATEWAYS[name]
    require(gateway.find() is not None, gateway.install_hint)
