"""The suite's own guard: a crash in authsvc must fail a test, not pass for a deny, whichever
server answered the check (the fast path of authsvc.http.protocol or the ASGI app)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Run by pytester in a fresh process, with tests.conftest's guard: a decision log that fails
# after every verdict (a real component, failing as one would), driven through both servers.
_GUARDED_TESTS = """
import asyncio

import falcon.testing
import pytest

from authsvc.config import Settings
from authsvc.http.app import create_app
from authsvc.observe.decisionlog import DecisionLog
from authsvc.runtime import Runtime
from tests.support.protocol_harness import Connection, parse_responses
from tests.support.tokens import DUMMY_SECRET


class FailingLog(DecisionLog):
    def record(self, verdict, **fields):
        raise OverflowError("a value the log could not format")


def app():
    runtime = Runtime.from_settings(Settings(secret=DUMMY_SECRET))
    return create_app(runtime, decision_log=FailingLog())


def through_the_fast_path():
    connection = Connection(app())
    asyncio.run(connection.send([b"GET /auth HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"]))
    (response,) = parse_responses(connection.output)
    assert response.status == 401


def through_the_asgi_app():
    assert falcon.testing.TestClient(app()).simulate_get("/auth").status_code == 401


def test_fast_path_unmarked():
    through_the_fast_path()


def test_asgi_app_unmarked():
    through_the_asgi_app()


@pytest.mark.internal_error
def test_fast_path_marked():
    through_the_fast_path()


@pytest.mark.internal_error
def test_asgi_app_marked():
    through_the_asgi_app()


def test_clean():
    pass
"""


def test_an_internal_error_in_either_server_fails_every_test_not_marked_for_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest("from tests.conftest import no_internal_error  # noqa: F401\n")
    pytester.makepyfile(_GUARDED_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    # pytest counts a test failed at teardown as passed and errored: one error per unmarked test.
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines_random(
        [
            "*ERROR at teardown of test_fast_path_unmarked*",
            "*ERROR at teardown of test_asgi_app_unmarked*",
        ]
    )
    result.stdout.fnmatch_lines(["*internal error in the app*answered but not recorded*"])
