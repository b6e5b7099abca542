"""Start, wait for and stop local processes: authsvc, nginx, the demo backend — for the demo, the
benchmark, the soak and the end-to-end tests alike."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from authsvc.config import KEY_SETTINGS, PUBLIC_DUMMY_SECRET_B64

START_TIMEOUT_SECONDS = 20
STOP_TIMEOUT_SECONDS = 10
WORKER_READY = "Started server process"  # what each authsvc worker logs once it serves


def authsvc_serve(
    bind: str,
    workers: int,
    *extra: str,
    command: Sequence[str] = (sys.executable, "-m", "authsvc"),
) -> list[str]:
    """The command line of `authsvc serve`."""
    return [*command, "serve", "--bind", bind, "--workers", str(workers), *extra]


def authsvc_env(settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without its APPROOV_* settings, then `settings`; Approov's public dummy
    secret unless `settings` names a key."""
    settings = dict(settings or {})
    names_a_key = any(name in settings for name in KEY_SETTINGS)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("APPROOV_")},
        **({} if names_a_key else {"APPROOV_BASE64_SECRET": PUBLIC_DUMMY_SECRET_B64}),
        **settings,
    }


def wait_until_ready(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path | None = None,
    workers: int = 0,
    booted_before: int = 0,
    *,
    keys_loaded: bool = True,
) -> None:
    """Poll `url`/readyz until it answers 200 (`/healthz` if the keys need not be loaded yet);
    then, given authsvc's log, until `workers` more workers have logged that they serve (a stop
    signal that reaches a booting worker is lost)."""
    wait_until_answering(f"{url}/{'readyz' if keys_loaded else 'healthz'}", process)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while log is not None and log.read_text(errors="replace").count(WORKER_READY) < (
        booted_before + workers
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{workers} workers of {url} did not boot")
        time.sleep(0.05)


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


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on right now, and never one handed out before by this
    process: a stack asks for all its ports before it starts anything, so two of them could
    otherwise get the same one (seen: the demo backend answered authsvc's readiness check)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0


def process_tree(pid: int) -> list[int]:
    return [pid, *children(pid)]


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU of these processes (a process gone meanwhile counts as 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")
