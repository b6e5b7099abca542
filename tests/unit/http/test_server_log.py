"""authsvc's own log lines in the real server: named, leveled, and heard by the end-to-end
tests' crash guard (tests.e2e.servers.is_internal_error)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from authsvc.http.server import log_authsvc_modules
from tests.e2e.servers import is_internal_error


@pytest.fixture
def server_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of the authsvc tree set up as `serve` sets up the whole tree, and its output."""
    logger, stream = logging.getLogger("authsvc.tests.server-log"), io.StringIO()
    log_authsvc_modules(logger, "info", stream)
    yield logger, stream
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def test_an_error_any_authsvc_module_logs_is_heard_by_the_end_to_end_crash_guard(
    server_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = server_log
    logging.getLogger(f"{logger.name}.metrics").error("metrics not recorded")
    logger.warning("JWKS https://keys.example not loaded")
    error, warning = stream.getvalue().splitlines()
    assert "[ERROR] authsvc.tests.server-log.metrics: metrics not recorded" in error
    assert is_internal_error(error)
    assert not is_internal_error(warning)
