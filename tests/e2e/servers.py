"""The real processes the end-to-end tests talk to, all on 127.0.0.1, stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from demo import nginx
from demo.processes import spawn, stop, wait_until_answering
from tests.tokens import DUMMY_SECRET_B64

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Process:
    """One command run in the background, its output in a log file."""

    def __init__(self, name: str, log_dir: Path) -> None:
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    stop_signal = signal.SIGTERM

    def spawn(self, command: list[str], env: Mapping[str, str] | None = None) -> None:
        with self.log_path.open("ab") as log:
            self.process = spawn(command, log, env, self.log_path.parent)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, self.stop_signal)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Authsvc(Process):
    """`authsvc serve` on a loopback port with the dummy secret."""

    # gunicorn's immediate shutdown: a graceful one waits for nginx's idle keep-alive
    # connections for up to graceful_timeout.
    stop_signal = signal.SIGQUIT

    def __init__(
        self,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        workers: int = 2,
        port: int | None = None,
        command: tuple[str, ...] = (sys.executable, "-m", "authsvc"),
    ) -> None:
        self.port = port or free_port()
        super().__init__(f"authsvc-{self.port}", log_dir)
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("APPROOV_")},
            "APPROOV_BASE64_SECRET": DUMMY_SECRET_B64,
            **(env or {}),
        }
        self._argv = [
            *command,
            "serve",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
        ]

    def start(self) -> Authsvc:
        self.spawn(self._argv, self._env)
        wait_until_answering(f"{self.url}/healthz", self.process)
        return self


class Backend(Process):
    """The demo backend, which counts the requests that reach it."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        super().__init__(f"backend-{self.port}", log_dir)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Backend:
        # demo/ is not installed: run it from the checkout.
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.spawn([sys.executable, "-m", "demo.backend", "--port", str(self.port)], env)
        wait_until_answering(f"{self.url}/__stats", self.process)
        return self


class Nginx(Process):
    """nginx running the shipped files from a private prefix."""

    def __init__(self, prefix: Path, ports: nginx.Ports, extra_http: str = "") -> None:
        prefix.mkdir(parents=True, exist_ok=True)
        super().__init__("nginx", prefix)
        self.prefix = prefix
        self.ports = ports
        self.url = f"http://127.0.0.1:{ports.nginx}"
        nginx.render(prefix, ports, extra_http)

    def start(self) -> Nginx:
        self.spawn(nginx.command(self.prefix, "-g", "daemon off;"))
        wait_until_answering(f"{self.url}/healthz", self.process)
        return self

    def access_log(self) -> str:
        return (self.prefix / "logs" / "approov-example.access.log").read_text()

    def error_log(self) -> str:
        return (self.prefix / "logs" / "error.log").read_text()
