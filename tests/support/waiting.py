"""Waiting on an event a test caused, never on a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], timeout: float = 5.0, what: str = "") -> T:
    """The first truthy value `predicate` returns, polled until `timeout` seconds have passed;
    an AssertionError naming `what` after that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"waited {timeout} s in vain for {what or predicate}"
        time.sleep(0.02)
