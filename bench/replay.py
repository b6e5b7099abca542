"""`make bench-replay`: what a single-use check costs beside a `required` one, with the replay
store (Debian's redis-server) on loopback, and what happens under load when the store stops
and comes back.

authsvc (`authsvc serve`, shipped defaults, decision log on) is called directly, as nginx's
include calls it, by wrk replaying unique requests signed as the SDKs sign them (an `install`
signature each), once each. Rows: `required` and `single-use` at 1 and at 32 connections:
checks/s, p50, p99, and authsvc's CPU per check. Then the fault run: single-use at 32
connections, the store stopped a third of the way in and started again at two thirds; every
answer counted by its reason.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from authsvc.config import DEFAULT_TOKEN_HEADER, PUBLIC_DUMMY_SECRET_B64
from authsvc.http.server import default_workers
from authsvc.tools.devtoken import TEST_IPK, mint, sign_request
from demo.processes import (
    authsvc_env,
    authsvc_serve,
    cpu_seconds,
    free_port,
    process_tree,
    spawn,
    stop,
    wait_until_ready,
)
from tests.e2e.servers import find_redis_server

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "lua" / "once.lua"
URL = "https://api.example.com/v1/payments?id={n}"
ROUTES = {
    "required": "/auth-binding-off-signing-required",
    "single-use": "/auth-binding-off-signing-single-use",
}
INSTALL = "apt-get install -y redis-server wrk"


def signed_requests(count: int) -> list[str]:
    """`count` different checks, each a line of `Name: value` headers separated by tabs."""
    import base64  # noqa: PLC0415 - only here

    secret = base64.b64decode(PUBLIC_DUMMY_SECRET_B64)
    token = mint(secret, lifetime_seconds=3600, ipk=TEST_IPK)
    lines = []
    for number in range(count):
        url = URL.format(n=number)
        client = [(DEFAULT_TOKEN_HEADER, token)]
        added = sign_request(
            "GET", url, client, token_header=DEFAULT_TOKEN_HEADER, lifetime_seconds=900
        )
        headers = [
            *client,
            *added,
            ("X-Original-Method", "GET"),
            ("X-Original-URI", url.removeprefix("https://api.example.com")),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "api.example.com"),
        ]
        lines.append("\t".join(f"{name}: {value}" for name, value in headers))
    return lines


@dataclass
class Run:
    """One wrk run: checks/s, latency (ms), how many, socket errors, answers by reason, and
    authsvc's CPU per check (us)."""

    rps: float
    p50: float
    p99: float
    total: int
    socket_errors: int
    reasons: dict[str, int]
    cpu_us: float = 0.0

    def answers(self) -> str:
        return ", ".join(f"{reason} {count:,}" for reason, count in sorted(self.reasons.items()))


def run_wrk(port: int, path: str, requests: Path, seconds: int, connections: int) -> Run:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(LUA)]
    command += [f"http://127.0.0.1:{port}{path}", "--", str(requests), path]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout

    def number(pattern: str) -> str:
        found = re.search(pattern, output, re.M)
        if found is None:
            raise RuntimeError(f"wrk said nothing like {pattern!r}:\n{output}")
        return found.group(1)

    socket_errors = re.search(r"Socket errors: (.*)", output)
    return Run(
        rps=float(number(r"Requests/sec:\s+([\d.]+)")),
        p50=int(number(r"^p50 (\d+)$")) / 1000,
        p99=int(number(r"^p99 (\d+)$")) / 1000,
        total=int(number(r"(\d+) requests in")),
        socket_errors=sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
        if socket_errors
        else 0,
        reasons={m[0]: int(m[1]) for m in re.findall(r"^reason (.+) (\d+)$", output, re.M)},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6, help="per row (default: 6)")
    parser.add_argument("--fault-seconds", type=int, default=12, help="the fault run's length")
    args = parser.parse_args()
    redis_server = find_redis_server()
    if redis_server is None or shutil.which("wrk") is None:
        print(f"bench-replay: needs redis-server and wrk: {INSTALL}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="authsvc-bench-replay-"))
    redis_port, port = free_port(), free_port()
    redis_command = [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1"]
    redis_command += ["--save", "", "--appendonly", "no", "--dir", str(work)]
    print("signing the requests ...", flush=True)
    per_row = 25_000
    files = {}
    for name in ("c1-required", "c1-single-use", "c32-required", "c32-single-use", "fault"):
        files[name] = work / f"{name}.txt"
        files[name].write_text("\n".join(signed_requests(per_row)) + "\n")
    with (work / "redis.log").open("wb") as redis_log, (work / "authsvc.log").open("wb") as log:
        store = spawn(redis_command, redis_log)
        env = authsvc_env({"APPROOV_REPLAY_STORE": f"redis://127.0.0.1:{redis_port}/0"})
        server = spawn(authsvc_serve(f"127.0.0.1:{port}", default_workers()), log, env)
        try:
            time.sleep(0.3)
            wait_until_ready(f"http://127.0.0.1:{port}", server, work / "authsvc.log")
            rows = {}
            for connections in (1, 32):
                for policy, path in ROUTES.items():
                    name = f"c{connections}-{policy}"
                    before = cpu_seconds(process_tree(server.pid))
                    result = run_wrk(port, path, files[name], args.seconds, connections)
                    used = cpu_seconds(process_tree(server.pid)) - before
                    result.cpu_us = used / max(1, result.total) * 1e6
                    rows[name] = result
            fault = fault_run(
                port,
                files["fault"],
                args.fault_seconds,
                store=store,
                redis_command=redis_command,
                redis_log=redis_log,
            )
        finally:
            stop(server)
            stop(store)
    print_results(rows, fault, args)
    return 0


def fault_run(
    port: int,
    requests: Path,
    seconds: int,
    *,
    store: subprocess.Popen[bytes],
    redis_command: list[str],
    redis_log: IO[bytes],
) -> Run:
    """Single-use at 32 connections; the store stopped at a third, started at two thirds."""
    restarted: list[subprocess.Popen[bytes]] = []

    def outage() -> None:
        time.sleep(seconds / 3)
        stop(store)
        time.sleep(seconds / 3)
        restarted.append(spawn(redis_command, redis_log))

    thread = threading.Thread(target=outage)
    thread.start()
    result = run_wrk(port, ROUTES["single-use"], requests, seconds, 32)
    thread.join()
    for process in restarted:
        stop(process)
    return result


def print_results(rows: dict[str, Run], fault: Run, args: argparse.Namespace) -> None:
    print(
        "\nauthsvc, shipped defaults, decision log on; unique install-signed checks;"
        f" redis-server on loopback; {args.seconds} s per row"
    )
    print(f"{'row':<18}{'checks/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/check':>14}   answers")
    for name, row in rows.items():
        print(
            f"{name:<18}{row.rps:>10,.0f}{row.p50:>9.2f}{row.p99:>9.2f}{row.cpu_us:>14.0f}"
            f"   {row.answers()}"
        )
    for connections in (1, 32):
        required, single = rows[f"c{connections}-required"], rows[f"c{connections}-single-use"]
        print(
            f"single-use / required at {connections} connection(s):"
            f" {single.rps / required.rps:.2f}x the checks/s,"
            f" {single.cpu_us - required.cpu_us:+.0f} us CPU per check"
        )
    print(
        f"\nfault run, {args.fault_seconds} s at 32 connections, the store stopped at a third"
        f" and started at two thirds: {fault.total:,} checks: {fault.answers()};"
        f" socket errors {fault.socket_errors}"
    )


if __name__ == "__main__":
    sys.exit(main())
