"""The worker's stopping state, which /readyz reports (tests/app: test_readyz_turns_503_...)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from authsvc.http.server import WorkerState
from authsvc.http.worker import AuthWorker


def worker(alive: bool, should_exit: bool | None) -> AuthWorker:
    """An AuthWorker's state without a gunicorn arbiter around it."""
    instance = object.__new__(AuthWorker)
    instance.alive = alive
    server = None if should_exit is None else SimpleNamespace(should_exit=should_exit)
    instance._server = server  # type: ignore[assignment]  # only should_exit is read
    return instance


@pytest.mark.parametrize(
    ("alive", "should_exit", "stopping"),
    [
        (True, None, False),  # booting: uvicorn's server not made yet
        (True, False, False),
        (True, True, True),  # uvicorn caught SIGTERM
        (False, False, True),  # SIGQUIT, or gunicorn's own exit path
    ],
)
def test_a_worker_is_stopping_once_uvicorn_or_gunicorn_says_so(
    alive: bool, should_exit: bool | None, stopping: bool
) -> None:
    state = WorkerState()
    assert state.stopping() is False  # no worker attached: the master, or a test app
    state.attach(worker(alive, should_exit))
    assert state.stopping() is stopping
