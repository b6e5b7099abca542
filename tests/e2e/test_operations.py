"""Operations with the real server: metrics across workers, graceful stop, access log off."""

from __future__ import annotations

import http.client
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.servers import Authsvc
from tests.tokens import OTHER_SECRET, bound_token

pytestmark = pytest.mark.e2e

ALLOWED, DENIED = 37, 23
ROUNDS = 20


def request(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    """One request on its own connection, so the kernel spreads them over the workers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def counter(text: str, decision: str, reason: str) -> float:
    pattern = rf'^authsvc_decisions_total{{decision="{decision}",reason="{reason}"}} (\S+)$'
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_exactly_across_two_workers(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    server = Authsvc(tmp_path, workers=2, extra_args=("--metrics-dir", str(metrics_dir))).start()
    try:
        good = {"Approov-Token": bound_token(b"Bearer m"), "Authorization": "Bearer m"}
        bad = {
            "Approov-Token": bound_token(b"Bearer m", secret=OTHER_SECRET),
            "Authorization": "Bearer m",
        }
        statuses: list[int] = []
        # Concurrent connections, in rounds until both workers have taken some (bounded).
        with ThreadPoolExecutor(max_workers=16) as pool:
            for _ in range(ROUNDS):
                batch = [good] * ALLOWED + [bad] * DENIED
                statuses += pool.map(lambda headers: request(server.port, "/auth", headers), batch)
                if len(list(metrics_dir.glob("counter_*.db"))) == 2:
                    break
        rounds = len(statuses) // (ALLOWED + DENIED)
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2, "one worker took every request"
        assert statuses.count(204) == ALLOWED * rounds
        assert statuses.count(401) == DENIED * rounds
        for _ in range(4):  # any worker answers for all of them
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            connection.request("GET", "/metrics")
            text = connection.getresponse().read().decode()
            connection.close()
            assert counter(text, "allow", "ok") == ALLOWED * rounds
            assert counter(text, "deny", "signature_invalid") == DENIED * rounds
    finally:
        server.stop()
    assert not list(metrics_dir.glob("gauge_live*")), "a stopped worker's live gauges stay"


def test_sigterm_turns_readiness_503_while_open_connections_are_still_served(
    tmp_path: Path,
) -> None:
    server = Authsvc(tmp_path, workers=1, extra_args=("--graceful-timeout", "5")).start()
    assert server.process is not None
    try:
        kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        kept.request("GET", "/readyz")
        assert kept.getresponse().read() == b"ready\n"
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1.5)  # the master passes SIGTERM on to its worker
        kept.request("GET", "/readyz")
        response = kept.getresponse()
        assert (response.status, response.read()) == (503, b"stopping\n")
        assert response.getheader("Connection") == "close"
        assert server.process.wait(timeout=15) == 0
    finally:
        server.stop()


def test_access_log_is_off_by_default_and_on_with_the_flag(tmp_path: Path) -> None:
    quiet = Authsvc(tmp_path, workers=1).start()
    loud = Authsvc(tmp_path, workers=1, extra_args=("--access-log",)).start()
    try:
        for server in (quiet, loud):
            request(server.port, "/healthz")
        time.sleep(0.5)
        assert '"GET /healthz HTTP/1.1" 200' not in quiet.log_text()
        assert '"GET /healthz HTTP/1.1" 200' in loud.log_text()
    finally:
        quiet.stop()
        loud.stop()
