"""The helpers that start local processes for the demo, the tests and the benchmarks."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from demo import processes


class OfferedPorts:
    """A stand-in for socket.socket whose bind(0) is given the ports listed, in turn."""

    def __init__(self, ports: Iterator[int]) -> None:
        self._ports = ports
        self._port = 0

    def __call__(self) -> OfferedPorts:
        return self

    def __enter__(self) -> OfferedPorts:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def bind(self, address: tuple[str, int]) -> None:
        self._port = next(self._ports)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self._port)


def test_free_port_never_hands_out_the_same_port_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ports asked for before either is bound (a backend's and authsvc's) must differ,
    even when the kernel offers the same free port again."""
    monkeypatch.setattr(processes, "_HANDED_OUT", set())
    monkeypatch.setattr(socket, "socket", OfferedPorts(iter([50001, 50001, 50002])))
    assert [processes.free_port(), processes.free_port()] == [50001, 50002]
