"""`make soak`: load and fault tests through nginx, all on loopback, bounded, self-stopping.

1. 60 s of keep-alive allow and deny traffic at full rate: no unexpected answer, RSS growth.
2. A worker killed with SIGKILL under load: requests that failed.
3. authsvc stopped and restarted under load: 503 only while it is down.
4. 500 slowloris connections against authsvc itself: other clients' latency.
5. A token expiring during the run: when it flips to deny.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from authsvc.devtoken import mint
from demo import nginx
from demo.processes import (
    WORKER_READY,
    authsvc_env,
    authsvc_serve,
    children,
    free_port,
    rss_mb,
    spawn,
    stop,
    wait_until_answering,
    wait_until_ready,
)
from tests.tokens import DUMMY_SECRET  # the dummy secret, decoded

BINDING = "Bearer soak-user"
EXPECT = REPO / "bench" / "lua" / "expect.lua"


class Authsvc:
    def __init__(self, workdir: Path, port: int) -> None:
        self.port, self.workdir = port, workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log_path = self.workdir / "authsvc.log"
        booted_before = log_path.read_text().count(WORKER_READY) if log_path.exists() else 0
        with log_path.open("ab") as log:
            self.process = spawn(authsvc_serve(f"127.0.0.1:{self.port}", 2), log, authsvc_env())
        wait_until_ready(f"http://127.0.0.1:{self.port}", self.process, log_path, 2, booted_before)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGQUIT)

    def workers(self) -> list[int]:
        return children(self.process.pid) if self.process is not None else []

    def worker_rss(self) -> list[float]:
        return [rss_mb(pid) for pid in self.workers()]


def wrk_expect(port: int, seconds: int, status: int, token: str, connections: int = 16) -> str:
    return subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(EXPECT),
            f"http://127.0.0.1:{port}/api/soak",
            "--",
            str(status),
            token,
            BINDING,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout


def summary(output: str) -> tuple[int, int, int]:
    """(requests, unexpected answers, socket errors) from a wrk run with expect.lua."""
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    unexpected = int(re.search(r"unexpected (\d+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Socket errors: (.*)", output)
    socket_errors = sum(map(int, re.findall(r"\d+", errors.group(1)))) if errors else 0
    return requests, unexpected, socket_errors


def timeline(port: int, headers: dict[str, str], seconds: float) -> list[tuple[float, int]]:
    """(time, status) of back-to-back requests on one keep-alive connection."""
    results: list[tuple[float, int]] = []
    deadline = time.monotonic() + seconds
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    while time.monotonic() < deadline:
        try:
            connection.request("GET", "/api/soak", headers=headers)
            response = connection.getresponse()
            response.read()
            results.append((time.monotonic(), response.status))
        except (OSError, http.client.HTTPException):
            results.append((time.monotonic(), 0))
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        time.sleep(0.002)
    connection.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60, help="length of the full-rate run")
    args = parser.parse_args()
    if shutil.which("wrk") is None or nginx.find_nginx() is None:
        print("soak: needs nginx and wrk: apt-get install -y nginx-light wrk", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="authsvc-soak-"))
    ports = nginx.Ports(free_port(), free_port(), free_port())
    valid = mint(DUMMY_SECRET, lifetime_seconds=3600, binding=BINDING)
    invalid = valid[:-3] + ("AAA" if not valid.endswith("AAA") else "BBB")
    headers = {"Approov-Token": valid, "Authorization": BINDING}
    authsvc = Authsvc(workdir, ports.authsvc)
    running: list[subprocess.Popen[bytes]] = []
    try:
        with (workdir / "backend.log").open("ab") as log:
            running.append(
                spawn(
                    [sys.executable, "-m", "demo.backend", "--port", str(ports.backend)],
                    log,
                    {**os.environ, "PYTHONPATH": str(REPO)},
                )
            )
        authsvc.start()
        nginx.render(workdir, ports)
        with (workdir / "nginx.log").open("ab") as log:
            running.append(spawn(nginx.command(workdir, "-g", "daemon off;"), log))
        wait_until_answering(f"http://127.0.0.1:{ports.nginx}/healthz", running[-1])

        # 1. full rate, allow and deny at once; the workers' RSS sampled every 10 s
        rss_before = authsvc.worker_rss()
        samples: list[float] = []
        sampling = threading.Event()

        def sample_rss() -> None:
            while not sampling.wait(10):
                samples.append(sum(authsvc.worker_rss()))

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        outputs: dict[str, str] = {}
        runs = [
            threading.Thread(
                target=lambda s=s, t=t: outputs.__setitem__(
                    s, wrk_expect(ports.nginx, args.seconds, s, t)
                )
            )
            for s, t in ((200, valid), (401, invalid))
        ]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
        sampling.set()
        rss_after = authsvc.worker_rss()
        for status, output in outputs.items():
            total, unexpected, errors = summary(output)
            print(
                f"1. {args.seconds} s full rate, expecting {status}: {total} requests, "
                f"{unexpected} unexpected answers, {errors} socket errors"
            )
        growth = (sum(rss_after) - sum(rss_before)) / sum(rss_before) * 100
        print(
            f"   worker RSS MB before {[round(x, 1) for x in rss_before]}, after "
            f"{[round(x, 1) for x in rss_after]}: {growth:+.1f}% (target < 10%)"
        )
        # Past the first 10 s (allocator and caches warming up), a leak shows as a climb.
        if len(samples) >= 2:
            warm = (sum(rss_after) - samples[0]) / samples[0] * 100
            print(
                f"   workers' RSS every 10 s, MB: {[round(x, 1) for x in samples]};"
                f" from 10 s to the end {warm:+.1f}% (target: no growth)"
            )

        # 2. SIGKILL one worker under load
        victim = authsvc.workers()[0]
        killer = threading.Timer(3, os.kill, (victim, signal.SIGKILL))
        killer.start()
        total, unexpected, errors = summary(wrk_expect(ports.nginx, 10, 200, valid))
        print(
            f"2. worker {victim} killed at 3 s of 10 s: {total} requests, {unexpected} failed, "
            f"{errors} socket errors; the master replaced it: "
            f"{victim not in authsvc.workers() and len(authsvc.workers()) == 2}"
        )

        # 3. authsvc stopped and restarted under load
        marks: dict[str, float] = {}

        def restart() -> None:
            time.sleep(2)
            marks["down"] = time.monotonic()
            authsvc.stop()
            marks["stopped"] = time.monotonic()
            time.sleep(2)
            authsvc.start()
            marks["up"] = time.monotonic()

        restarter = threading.Thread(target=restart)
        restarter.start()
        points = timeline(ports.nginx, headers, 12)
        restarter.join()
        outside = [s for t, s in points if not marks["down"] <= t <= marks["up"]]
        unavailable = [t for t, s in points if s == 503]
        print(
            f"3. restart under load: {len(points)} requests, {len(unavailable)} got 503, all "
            f"while down: {all(marks['down'] <= t <= marks['up'] for t in unavailable)}; "
            f"outside that window {sum(s != 200 for s in outside)} not 200; other statuses: "
            f"{sorted({s for _, s in points} - {200, 503})}"
        )

        # 4. slowloris straight at authsvc
        slow = []
        for _ in range(500):
            connection = socket.create_connection(("127.0.0.1", ports.authsvc))
            connection.sendall(b"GET /auth HTTP/1.1\r\nHost: x\r\n")
            slow.append(connection)
        latencies = []
        for _ in range(200):
            started = time.monotonic()
            probe = http.client.HTTPConnection("127.0.0.1", ports.authsvc, timeout=5)
            probe.request("GET", "/auth", headers=headers)
            probe.getresponse().read()
            probe.close()
            latencies.append((time.monotonic() - started) * 1000)
            for connection in slow[:50]:
                connection.sendall(b"X")  # a byte now and then keeps them alive
        for connection in slow:
            connection.close()
        latencies.sort()
        print(
            f"4. 500 slowloris connections open: 200 other requests, p50 "
            f"{latencies[100]:.2f} ms, p99 {latencies[197]:.2f} ms, max {latencies[-1]:.2f} ms"
        )

        # 5. a token expiring during the run (leeway 0)
        now = time.time()
        expiring = mint(DUMMY_SECRET, lifetime_seconds=4, binding=BINDING, now=now)
        exp = int(now + 4)  # as mint computes it
        points = timeline(ports.nginx, {**headers, "Approov-Token": expiring}, 7)
        wall = time.time() - time.monotonic()
        allowed_after = [t + wall - exp for t, s in points if s == 200 and t + wall >= exp]
        first_deny = next((t + wall - exp for t, s in points if s == 401), None)
        print(
            f"5. token expiring mid-run: allowed after exp {len(allowed_after)} times, "
            f"first deny {first_deny:+.3f} s from exp (leeway 0)"
        )
    finally:
        authsvc.stop()
        for process in reversed(running):
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
