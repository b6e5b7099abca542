from __future__ import annotations

import pytest

from tests.app.service import Service


@pytest.fixture
def service() -> Service:
    """The app with the default settings."""
    return Service()
