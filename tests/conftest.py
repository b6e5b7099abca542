from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from demo import nginx
from demo.gateways import GATEWAYS

pytest_plugins = ["pytester"]


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


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(autouse=True)
def no_internal_error(request: pytest.FixtureRequest) -> Iterator[None]:
    """A crash must never pass for a deny: any test in which authsvc logged an error (a denied
    `internal_error`, a failure after the verdict, metrics not recorded) fails, unless it is
    marked `internal_error`. Every module logs on its `__name__`: the `authsvc` tree hears all."""
    errors = _Errors()
    logger = logging.getLogger("authsvc")
    logger.addHandler(errors)
    try:
        yield
    finally:
        logger.removeHandler(errors)
    if errors.messages and request.node.get_closest_marker("internal_error") is None:
        pytest.fail(f"internal error in the app: {errors.messages}")
