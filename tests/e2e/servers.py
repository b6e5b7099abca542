"""Start and stop the real processes the end-to-end tests talk to, all on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tests.tokens import DUMMY_SECRET_B64

START_TIMEOUT_SECONDS = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_answering(url: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {START_TIMEOUT_SECONDS}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process this test run started, by its pid; SIGKILL if SIGTERM is not enough."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class Authsvc:
    """`authsvc serve` on a free loopback port, its output in a log file."""

    def __init__(
        self,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        workers: int = 2,
        command: tuple[str, ...] = (sys.executable, "-m", "authsvc"),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"authsvc-{self.port}.log"
        self._env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("APPROOV_")},
            "APPROOV_BASE64_SECRET": DUMMY_SECRET_B64,
            **(env or {}),
        }
        self._workers = workers
        self._command = command
        self._cwd = log_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Authsvc:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *self._command,
                    "serve",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self._workers),
                ],
                env=self._env,
                cwd=self._cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_answering(f"{self.url}/healthz", self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
