"""`make soak`: load and fault tests behind each gateway, all on loopback, bounded, self-stopping.

Behind nginx, Envoy (over HTTP and gRPC), Caddy and HAProxy in turn, each running its shipped
file in front of `authsvc serve` (2 workers) and the demo backend:

1. `--seconds` of keep-alive traffic at full rate, allowed, denied and signed requests at once:
   unexpected answers, socket errors, the workers' RSS every 10 s;
2. a worker killed with SIGKILL under load: requests that failed;
3. the secret rotated by SIGHUP under load (new secret file, the old one kept as previous):
   tokens of either secret allowed, requests that failed;
4. authsvc stopped and restarted under load: the statuses while it was down (the proxy's
   documented choice: nginx's include, Envoy and HAProxy 503, Caddy 502), and outside that
   window.

Then once, behind nginx and straight at authsvc:
5. 500 slowloris connections against authsvc itself: other clients' latency;
6. a token expiring during the run: when it flips to deny.
"""

from __future__ import annotations

import argparse
import base64
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
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from authsvc.tools.devtoken import mint, sign_request
from demo import nginx
from demo.gateways import GATEWAYS
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
from tests.support.signatures import APPROOV_TEST_IPK
from tests.support.tokens import (  # the dummy secret, decoded; another one
    DUMMY_SECRET,
    OTHER_SECRET,
)

BENCH = Path(__file__).resolve().parent
BINDING = "Bearer soak-user"
TOKEN_HEADER = "Approov-Token"
EXPECT = BENCH / "lua" / "expect.lua"
# What a client gets while authsvc is down, by gateway (README, "Every front door").
DOWN_STATUS = {"nginx": 503, "envoy": 503, "envoy-grpc": 503, "caddy": 502, "haproxy": 503}
RESTART_DOWN_SECONDS = 2


def b64(secret: bytes) -> str:
    return base64.b64encode(secret).decode()


class Authsvc:
    """`authsvc serve` with its secret in a file (rotated by SIGHUP) and its .env in `workdir`."""

    def __init__(
        self, workdir: Path, port: int, max_signature_age: int, grpc_bind: str | None
    ) -> None:
        self.port, self.workdir = port, workdir
        self.secret_file = workdir / "secret"
        self.secret_file.write_text(b64(DUMMY_SECRET) + "\n")
        (workdir / ".env").write_text("")
        self.env = authsvc_env(
            {
                "APPROOV_BASE64_SECRET_FILE": str(self.secret_file),
                # A signature signed once at the start stays fresh for the whole run.
                "APPROOV_SIGNATURE_MAX_AGE_SECONDS": str(max_signature_age),
                # For a gateway that checks over gRPC (envoy-grpc).
                **({"APPROOV_GRPC_BIND": grpc_bind} if grpc_bind else {}),
            }
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log_path = self.workdir / "authsvc.log"
        booted_before = log_path.read_text().count(WORKER_READY) if log_path.exists() else 0
        with log_path.open("ab") as log:
            self.process = spawn(
                authsvc_serve(f"127.0.0.1:{self.port}", 2), log, self.env, self.workdir
            )
        wait_until_ready(f"http://127.0.0.1:{self.port}", self.process, log_path, 2, booted_before)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGQUIT)

    def workers(self) -> list[int]:
        return children(self.process.pid) if self.process is not None else []

    def worker_rss(self) -> list[float]:
        return [rss_mb(pid) for pid in self.workers()]

    def rotate(self, new_secret: bytes, previous: bytes) -> None:
        """The new secret current, the old one still accepted; returns once no old worker is
        left."""
        if self.process is None:
            raise RuntimeError("authsvc is not running")
        old_workers = set(self.workers())
        self.secret_file.write_text(b64(new_secret) + "\n")
        (self.workdir / ".env").write_text(f"APPROOV_BASE64_SECRET_PREVIOUS={b64(previous)}\n")
        os.kill(self.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while set(self.workers()) & old_workers or len(self.workers()) < len(old_workers):
            if time.monotonic() > deadline:
                raise RuntimeError("the old workers did not go away after SIGHUP")
            time.sleep(0.1)


@dataclass(frozen=True)
class Traffic:
    """What a client sends: a path and headers, and the status it should get."""

    name: str
    path: str
    headers: dict[str, str]
    status: int


def traffic(port: int, secret: bytes) -> list[Traffic]:
    """The mix at full rate: a bound token, a tampered one, a signed request."""
    valid = mint(secret, lifetime_seconds=3600, binding=BINDING)
    invalid = valid[:-3] + ("AAA" if not valid.endswith("AAA") else "BBB")
    signed_token = mint(secret, lifetime_seconds=3600, binding=BINDING, ipk=APPROOV_TEST_IPK)
    headers = [(TOKEN_HEADER, signed_token), ("Authorization", BINDING)]
    url = f"http://127.0.0.1:{port}/signed/soak"
    signature = sign_request("GET", url, headers, token_header=TOKEN_HEADER, lifetime_seconds=3600)
    return [
        Traffic("allow", "/api/soak", {TOKEN_HEADER: valid, "Authorization": BINDING}, 200),
        Traffic("deny", "/api/soak", {TOKEN_HEADER: invalid, "Authorization": BINDING}, 401),
        Traffic("signed", "/signed/soak", dict(headers + signature), 200),
    ]


def wrk_expect(port: int, seconds: int, load: Traffic, connections: int) -> str:
    return subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(EXPECT),
            f"http://127.0.0.1:{port}{load.path}",
            "--",
            str(load.status),
            *(f"{name}: {value}" for name, value in load.headers.items()),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout


@dataclass
class Counts:
    requests: int = 0
    unexpected: int = 0
    socket_errors: int = 0
    unexpected_statuses: Counter[str] = field(default_factory=Counter)
    socket_error_kinds: Counter[str] = field(default_factory=Counter)

    def add(self, output: str) -> None:
        """A wrk run with expect.lua."""
        self.requests += int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
        unexpected = re.search(r"unexpected (\d+) statuses:(.*)", output)
        self.unexpected += int(unexpected.group(1))  # type: ignore[union-attr]
        self.unexpected_statuses.update(unexpected.group(2).split())  # type: ignore[union-attr]
        errors = re.search(r"Socket errors: (.*)", output)
        for kind, count in re.findall(r"(\w+) (\d+)", errors.group(1) if errors else ""):
            self.socket_errors += int(count)
            if int(count):
                self.socket_error_kinds[kind] += int(count)

    def __str__(self) -> str:
        unexpected = f" {dict(self.unexpected_statuses)}" if self.unexpected else ""
        errors = f" {dict(self.socket_error_kinds)}" if self.socket_errors else ""
        return (
            f"{self.requests} requests, {self.unexpected} unexpected{unexpected}, "
            f"{self.socket_errors} socket errors{errors}"
        )


def under_load(port: int, loads: list[Traffic], seconds: int, during: Callable[[], None]) -> Counts:
    """Every load at once for `seconds` (16 connections for the first, 8 for each other), with
    `during` run alongside."""
    counts = Counts()
    outputs: list[str] = []
    runs = [
        threading.Thread(
            target=lambda load=load, c=16 if i == 0 else 8: outputs.append(
                wrk_expect(port, seconds, load, c)
            )
        )
        for i, load in enumerate(loads)
    ]
    for run in runs:
        run.start()
    during()
    for run in runs:
        run.join()
    for output in outputs:
        counts.add(output)
    return counts


def timeline(port: int, load: Traffic, seconds: float) -> list[tuple[float, int]]:
    """(when sent, status) of back-to-back requests on one keep-alive connection (0: no
    answer)."""
    results: list[tuple[float, int]] = []
    deadline = time.monotonic() + seconds
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    while (sent := time.monotonic()) < deadline:
        try:
            connection.request("GET", load.path, headers=load.headers)
            response = connection.getresponse()
            response.read()
            results.append((sent, response.status))
        except (OSError, http.client.HTTPException):
            results.append((sent, 0))
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        time.sleep(0.002)
    connection.close()
    return results


@dataclass
class Report:
    gateway: str
    full_rate: Counts = field(default_factory=Counts)
    rss_samples: list[float] = field(default_factory=list)
    killed: Counts = field(default_factory=Counts)
    worker_replaced: bool = False
    rotation: Counts = field(default_factory=Counts)
    new_secret_allowed: bool = False
    down_statuses: Counter[int] = field(default_factory=Counter)
    outside_unexpected: int = 0
    outside_requests: int = 0


class Gateway:
    """A gateway with its shipped file in front of the backend and authsvc."""

    def __init__(self, name: str, workdir: Path, ports: nginx.Ports) -> None:
        self.name, self.port = name, ports.nginx
        if name == "nginx":
            nginx.render(workdir, ports)
            self.command = nginx.command(workdir, "-g", "daemon off;")
        else:
            gateway = GATEWAYS[name]
            self.command = gateway.command(gateway.render(workdir / name, ports))
        self.log = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = spawn(self.command, log)
        wait_until_answering(f"http://127.0.0.1:{self.port}/healthz", self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@contextmanager
def running(name: str, workdir: Path, max_signature_age: int) -> Iterator[tuple[int, Authsvc]]:
    """The demo backend, authsvc and gateway `name` (its shipped file) on fresh loopback ports;
    the gateway's port and authsvc, everything stopped after."""
    workdir.mkdir()
    ports = nginx.Ports(free_port(), free_port(), free_port(), free_port())
    speaks_grpc = name != "nginx" and GATEWAYS[name].speaks_grpc
    grpc_bind = f"127.0.0.1:{ports.authsvc_grpc}" if speaks_grpc else None
    authsvc = Authsvc(workdir, ports.authsvc, max_signature_age, grpc_bind)
    gateway = Gateway(name, workdir, ports)
    backend: subprocess.Popen[bytes] | None = None
    try:
        with (workdir / "backend.log").open("ab") as log:
            backend = spawn(
                [sys.executable, "-m", "demo.backend", "--port", str(ports.backend)],
                log,
                {**os.environ, "PYTHONPATH": str(BENCH.parent)},
            )
        authsvc.start()
        gateway.start()
        yield ports.nginx, authsvc
    finally:
        gateway.stop()
        authsvc.stop()
        if backend is not None:
            stop(backend)


def soak(name: str, seconds: int, workdir: Path) -> Report:
    """Steps 1 to 4 behind gateway `name`."""
    report = Report(name)
    with running(name, workdir, max_signature_age=seconds + 300) as (port, authsvc):
        loads = traffic(port, DUMMY_SECRET)

        # 1. full rate; the workers' RSS every 10 s
        sampling = threading.Event()

        def sample_rss() -> None:
            report.rss_samples.append(sum(authsvc.worker_rss()))
            while not sampling.wait(10):
                report.rss_samples.append(sum(authsvc.worker_rss()))

        sampler = threading.Thread(target=sample_rss, daemon=True)
        report.full_rate = under_load(port, loads, seconds, sampler.start)
        sampling.set()
        report.rss_samples.append(sum(authsvc.worker_rss()))

        # 2. SIGKILL one worker under load
        victim = authsvc.workers()[0]
        killer = threading.Timer(3, os.kill, (victim, signal.SIGKILL))
        report.killed = under_load(port, loads, 10, killer.start)
        killer.join()
        report.worker_replaced = victim not in authsvc.workers() and len(authsvc.workers()) == 2

        # 3. the secret rotated by SIGHUP under load: the old secret's tokens stay allowed
        def rotate() -> None:
            time.sleep(2)
            authsvc.rotate(OTHER_SECRET, previous=DUMMY_SECRET)

        report.rotation = under_load(port, loads, 10, rotate)
        new_loads = traffic(port, OTHER_SECRET)
        report.new_secret_allowed = all(
            timeline(port, load, 0.2)[-1][1] == load.status for load in new_loads
        )

        # 4. authsvc stopped and restarted under load
        marks: dict[str, float] = {}

        def restart() -> None:
            time.sleep(2)
            marks["down"] = time.monotonic()
            authsvc.stop()
            time.sleep(RESTART_DOWN_SECONDS)
            authsvc.start()
            marks["up"] = time.monotonic()

        restarter = threading.Thread(target=restart)
        restarter.start()
        points = timeline(port, new_loads[0], 12)
        restarter.join()
        for at, status in points:
            if marks["down"] <= at <= marks["up"]:
                report.down_statuses[status] += 1
            else:
                report.outside_requests += 1
                report.outside_unexpected += status != new_loads[0].status
    return report


def straight_at_authsvc(workdir: Path) -> None:
    """Steps 5 and 6, behind nginx."""
    with running("nginx", workdir, max_signature_age=60) as (port, authsvc):
        authsvc_port = authsvc.port
        allow = traffic(port, DUMMY_SECRET)[0]

        # 5. slowloris straight at authsvc
        slow = []
        for _ in range(500):
            connection = socket.create_connection(("127.0.0.1", authsvc_port))
            connection.sendall(b"GET /auth HTTP/1.1\r\nHost: x\r\n")
            slow.append(connection)
        latencies = []
        for _ in range(200):
            started = time.monotonic()
            probe = http.client.HTTPConnection("127.0.0.1", authsvc_port, timeout=5)
            probe.request("GET", "/auth", headers=allow.headers)
            probe.getresponse().read()
            probe.close()
            latencies.append((time.monotonic() - started) * 1000)
            for connection in slow[:50]:
                connection.sendall(b"X")  # a byte now and then keeps them alive
        for connection in slow:
            connection.close()
        latencies.sort()
        print(
            f"5. 500 slowloris connections open: 200 other requests, p50 "
            f"{latencies[100]:.2f} ms, p99 {latencies[197]:.2f} ms, max {latencies[-1]:.2f} ms"
        )

        # 6. a token expiring during the run (leeway 0)
        now = time.time()
        expiring = mint(DUMMY_SECRET, lifetime_seconds=4, binding=BINDING, now=now)
        exp = int(now + 4)  # as mint computes it
        load = Traffic("expiring", "/api/soak", {**allow.headers, TOKEN_HEADER: expiring}, 200)
        points = timeline(port, load, 7)
        wall = time.time() - time.monotonic()
        allowed_after = [t + wall - exp for t, s in points if s == 200 and t + wall >= exp]
        first_deny = next((t + wall - exp for t, s in points if s == 401), float("nan"))
        print(
            f"6. token expiring mid-run: allowed after exp {len(allowed_after)} times, "
            f"first deny {first_deny:+.3f} s from exp (leeway 0)"
        )


def print_report(report: Report, seconds: int) -> None:
    full, killed, rotation = report.full_rate, report.killed, report.rotation
    samples = report.rss_samples
    # Past the first 10 s (allocator and caches warming up), a leak shows as a climb.
    warm = f"{(samples[-1] - samples[1]) / samples[1] * 100:+.1f}%" if len(samples) > 2 else "n/a"
    down = DOWN_STATUS[report.gateway]
    print(
        f"{report.gateway}:\n"
        f"  1. {seconds} s full rate (allow, deny, signed): {full}; workers' RSS MB "
        f"every 10 s {[round(x, 1) for x in samples]}, from 10 s to the end {warm}\n"
        f"  2. a worker SIGKILLed at 3 s of 10 s: {killed}; replaced: {report.worker_replaced}\n"
        f"  3. secret rotated by SIGHUP at 2 s of 10 s: {rotation}; the new secret's tokens"
        f" allowed after: {report.new_secret_allowed}\n"
        f"  4. authsvc down {RESTART_DOWN_SECONDS} s and restarted: statuses while down "
        f"{dict(report.down_statuses)} (expected {down}); outside that window "
        f"{report.outside_unexpected} unexpected of {report.outside_requests}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60, help="length of the full-rate run")
    parser.add_argument(
        "--gateway",
        choices=["nginx", *sorted(GATEWAYS)],
        action="append",
        help="soak behind this gateway (repeat for several; default: every one)",
    )
    args = parser.parse_args()
    names = args.gateway or ["nginx", *sorted(GATEWAYS)]
    missing = [name for name in names if name != "nginx" and GATEWAYS[name].find() is None]
    if shutil.which("wrk") is None or nginx.find_nginx() is None or missing:
        print(
            "soak: needs nginx and wrk (apt-get install -y nginx-light wrk), and Envoy and Caddy"
            " (make test installs them into .venv)",
            file=sys.stderr,
        )
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="authsvc-soak-"))
    try:
        for name in names:
            print_report(soak(name, args.seconds, workdir / name), args.seconds)
        straight_at_authsvc(workdir / "straight")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
