"""Every input a fuzzer ever crashed on (tests/fuzz/crashes/, named `<target>-crash-<sha1>` by
`make fuzz`) is replayed through its target on every run: a crash fixed stays fixed. A few
seeds go through each target too, so the replay itself is known to work."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest

CRASHES = Path(__file__).with_name("crashes")
TARGETS = ("verify", "protocol")
SEEDS = (b"", b"\x00" * 64, b"GET /auth HTTP/1.1\r\n\r\n" * 3, bytes(range(256)))


def target(name: str) -> Callable[[bytes], None]:
    one_input: Callable[[bytes], None] = importlib.import_module(
        f"tests.fuzz.fuzz_{name}"
    ).one_input
    return one_input


@pytest.mark.parametrize("crash", sorted(CRASHES.glob("*-crash-*")), ids=lambda path: path.name)
def test_a_crash_the_fuzzer_found_stays_fixed(crash: Path) -> None:
    target(crash.name.split("-", 1)[0])(crash.read_bytes())


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("seed", SEEDS, ids=["empty", "zeros", "checks", "all-bytes"])
def test_each_fuzz_target_runs_its_seeds(name: str, seed: bytes) -> None:
    target(name)(seed)
