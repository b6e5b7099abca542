"""Start, wait for and stop local processes (the demo's and the end-to-end tests')."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO

START_TIMEOUT_SECONDS = 20
STOP_TIMEOUT_SECONDS = 10


def spawn(
    command: list[str],
    output: IO[bytes] | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` as the leader of its own process group, so it can be stopped whole."""
    return subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until_answering(url: str, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers; fail early if `process` exits first."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback http only
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {START_TIMEOUT_SECONDS}s")


def stop(process: subprocess.Popen[bytes], how: signal.Signals = signal.SIGTERM) -> None:
    """Stop a process we spawned: `how` to its pid, then SIGKILL to its whole group if it lingers.

    The group kill also takes the children it forked (gunicorn's and nginx's workers), which
    would otherwise be left running without their master.
    """
    if process.poll() is None:
        process.send_signal(how)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError):  # the group may be gone already
        os.killpg(process.pid, signal.SIGKILL)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0
