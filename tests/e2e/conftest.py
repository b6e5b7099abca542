from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.servers import Authsvc


@pytest.fixture(scope="module")
def authsvc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authsvc]:
    server = Authsvc(tmp_path_factory.mktemp("authsvc")).start()
    yield server
    server.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
