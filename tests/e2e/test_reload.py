"""Secret rotation by `kill -HUP` under keep-alive load through nginx: nothing fails."""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.servers import Client, Stack, send
from tests.support.tokens import DUMMY_SECRET, OTHER_SECRET, bound_token
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("nginx_available")]

AUTHORIZATION = b"Bearer rotating-user"
LOAD_LIMIT_REQUESTS = 50_000
LOAD_LIMIT_SECONDS = 90
GRACEFUL_SECONDS = 3


def b64(secret: bytes) -> str:
    return base64.b64encode(secret).decode()


def headers_for(secret: bytes) -> dict[str, str]:
    return {
        "Approov-Token": bound_token(AUTHORIZATION, secret=secret),
        "Authorization": AUTHORIZATION.decode(),
    }


class Load:
    """Keep-alive traffic on 2 connections until stopped (bounded in count and time)."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.statuses: Counter[int | str] = Counter()
        self._port = port
        self._headers = headers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        clients = [Client(self._port), Client(self._port)]
        deadline = time.monotonic() + LOAD_LIMIT_SECONDS
        try:
            for i in range(LOAD_LIMIT_REQUESTS):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                client = clients[i % 2]
                try:
                    self.statuses[client.send("GET", f"/api/rotate?{i}", self._headers).status] += 1
                except (OSError, ConnectionError) as error:
                    self.statuses[type(error).__name__] += 1
                    clients[i % 2] = Client(self._port)
        finally:
            for client in clients:
                client.close()


def workers_of(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def reload_and_wait(master: int) -> None:
    """HUP the master; return once none of the old workers is left."""
    old = workers_of(master)
    os.kill(master, signal.SIGHUP)
    wait_until(
        lambda: not workers_of(master) & old and len(workers_of(master)) >= len(old),
        GRACEFUL_SECONDS + 20,
        "the old workers to go",
    )


@pytest.fixture
def rotating(tmp_path: Path) -> Iterator[tuple[Stack, Path, Path]]:
    secret_file = tmp_path / "secret"
    secret_file.write_text(b64(DUMMY_SECRET) + "\n")
    stack = Stack(
        tmp_path,
        env={"APPROOV_BASE64_SECRET_FILE": str(secret_file)},
        extra_args=("--graceful-timeout", str(GRACEFUL_SECONDS)),
    )
    try:
        yield stack, secret_file, tmp_path / ".env"
    finally:
        stack.stop()


def test_rotating_the_secret_file_with_hup_fails_no_request(
    rotating: tuple[Stack, Path, Path],
) -> None:
    stack, secret_file, dot_env = rotating
    assert stack.authsvc.process is not None
    master = stack.authsvc.process.pid
    port = stack.nginx.ports.nginx
    old, new = headers_for(DUMMY_SECRET), headers_for(OTHER_SECRET)
    assert send(port, "GET", "/api/x", new).status == 401

    with Load(port, old) as load:
        time.sleep(0.5)
        # 1. the new secret becomes current, the old one stays accepted for a while
        secret_file.write_text(b64(OTHER_SECRET) + "\n")
        dot_env.write_text(f"APPROOV_BASE64_SECRET_PREVIOUS={b64(DUMMY_SECRET)}\n")
        reload_and_wait(master)
        assert send(port, "GET", "/api/x", new).status == 200
        # 2. a broken secret file: the reload is refused, service goes on unchanged
        secret_file.write_text("not base64 at all!\n")
        reload_and_wait(master)
        assert send(port, "GET", "/api/x", new).status == 200
        time.sleep(0.5)
    sent = sum(load.statuses.values())
    print(f"rotation under load: {sent} requests, statuses {dict(load.statuses)}")
    assert load.statuses == Counter({200: sent}), load.statuses
    assert sent > 100
    assert "reload refused, keeping the running configuration" in stack.authsvc.log_text()

    # 3. the old secret's window closes
    secret_file.write_text(b64(OTHER_SECRET) + "\n")
    dot_env.write_text("")
    reload_and_wait(master)
    assert send(port, "GET", "/api/x", old).status == 401
    assert send(port, "GET", "/api/x", new).status == 200
    assert '"key": "previous-secret-1"' in stack.authsvc.log_text()
    # workers that left on reload did not take the shared metrics directory with them
    assert send(stack.authsvc.port, "GET", "/metrics").status == 200
    assert "Traceback" not in stack.authsvc.log_text()
