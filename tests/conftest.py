from __future__ import annotations

import os

import pytest

from demo import nginx


@pytest.fixture(scope="session")
def nginx_available() -> None:
    """nginx tests skip where nginx is missing, except in CI, where that is a failure."""
    if nginx.find_nginx() is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the nginx tests: {nginx.INSTALL_HINT}")
        pytest.skip(nginx.INSTALL_HINT)
