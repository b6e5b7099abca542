"""The suite's own guard: a crash in the app must fail a test, not pass for a deny."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_an_internal_error_fails_every_test_not_marked_for_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest("from tests.conftest import no_internal_error  # noqa: F401\n")
    pytester.makepyfile(
        """
        import logging
        import pytest

        def test_unmarked():
            logging.getLogger("authsvc.http.app").error("verification failed, denied: X at f:1")

        @pytest.mark.internal_error
        def test_marked():
            logging.getLogger("authsvc.http.app").error("verification failed, denied: X at f:1")

        def test_clean():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    # pytest counts a test failed at teardown as passed and errored: one error, the unmarked test.
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_unmarked*", "*internal error in the app*"]
    )
