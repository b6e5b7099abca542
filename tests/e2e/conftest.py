from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo import nginx
from tests.e2e.servers import Authsvc


@pytest.fixture(scope="module")
def authsvc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authsvc]:
    server = Authsvc(tmp_path_factory.mktemp("authsvc")).start()
    yield server
    server.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def nginx_available() -> None:
    """nginx tests skip where nginx is missing, except in CI, where that is a failure."""
    if nginx.find_nginx() is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the nginx tests: {nginx.INSTALL_HINT}")
        pytest.skip(nginx.INSTALL_HINT)
