"""`make profile`: where a check's CPU goes in the running server, stage by stage.

One authsvc worker (shipped defaults, decision log on, written to a file) is loaded straight
with wrk (no proxy) while py-spy samples it. The worker's CPU time over the run (from
/proc/<pid>/stat) divided by the checks answered is its CPU µs per check; each sample is given
to the stage of its innermost authsvc (or uvicorn) frame, and a stage's µs is its share of the
samples times that. py-spy sees Python frames only: time in uvloop's C code (socket reads and
writes, callbacks) is the "event loop" stage.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from authsvc.config import PUBLIC_DUMMY_SECRET_B64
from authsvc.tools.devtoken import mint
from demo.processes import (
    authsvc_env,
    authsvc_serve,
    children,
    free_port,
    spawn,
    stop,
    wait_until_ready,
)

BENCH = Path(__file__).resolve().parent
BINDING = "Bearer bench-user"
SECRET = base64.b64decode(PUBLIC_DUMMY_SECRET_B64)
# Innermost match wins: a frame's file (and function) -> the stage it belongs to.
STAGES = (
    ("decision line", re.compile(r"authsvc/observe/decisionlog\.py")),
    ("metrics", re.compile(r"authsvc/observe/metrics\.py|prometheus_client/")),
    ("credentials", re.compile(r"authsvc/check/credentials\.py")),
    ("verify + cache", re.compile(r"authsvc/check/(verify|cache|jose|keys|rules)\.py|/jwt/")),
    ("signing", re.compile(r"authsvc/check/(origin|signing|message)\.py")),
    ("answer (authsvc HTTP)", re.compile(r"authsvc/http/")),
    ("uvicorn protocol + ASGI", re.compile(r"uvicorn/|asyncio/(?!runners)")),
)
OTHER = "event loop (uvloop C, I/O)"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stage_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):  # innermost first
        for name, pattern in STAGES:
            if pattern.search(frame):
                return name
    return OTHER


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--token", choices=("hit", "miss", "deny"), default="hit")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if shutil.which("wrk") is None or not Path(py_spy).exists():
        print("profile: needs wrk (apt) and py-spy (pip install py-spy)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="authsvc-profile-"))
    port = free_port()
    token = mint(SECRET, lifetime_seconds=3600, binding=BINDING, did="bench")
    headers = ["-H", f"Authorization: {BINDING}"]
    if args.token == "miss":
        tokens = workdir / "tokens.txt"
        tokens.write_text(
            "\n".join(
                mint(SECRET, lifetime_seconds=3600, binding=BINDING, did=f"d{i}")
                for i in range(100_000)
            )
            + "\n"
        )
        extra = ["-s", str(BENCH / "lua" / "rotate.lua"), "--", str(tokens), "/auth"]
    else:
        wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        extra = ["-H", f"Approov-Token: {token if args.token == 'hit' else wrong}"]
    with (workdir / "authsvc.log").open("ab") as log:
        authsvc = spawn(authsvc_serve(f"127.0.0.1:{port}", 1), log, authsvc_env())
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", authsvc)
        (worker,) = children(authsvc.pid)
        url = f"http://127.0.0.1:{port}/auth"

        def wrk(seconds: int) -> list[str]:
            return ["wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s", url, *headers, *extra]

        subprocess.run(wrk(2), capture_output=True, check=True)  # warm up
        # Unsampled first: the rate and the CPU per check; then the same run sampled, for shares.
        cpu_before = cpu_seconds(worker)
        run = subprocess.run(wrk(args.seconds), capture_output=True, text=True, check=True)
        output = run.stdout
        cpu = cpu_seconds(worker) - cpu_before
        raw = workdir / "stacks.txt"
        sampler = subprocess.Popen(
            [
                *(py_spy, "record", "--pid", str(worker), "--format", "raw", "--rate", "250"),
                *("--nonblocking", "--duration", str(args.seconds), "-o", str(raw)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        subprocess.run(wrk(args.seconds), capture_output=True, check=True)
        sampler.wait(timeout=args.seconds + 30)
        requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
        samples: Counter[str] = Counter()
        for line in raw.read_text().splitlines():
            stack, _, stack_samples = line.rpartition(" ")
            samples[stage_of(stack)] += int(stack_samples)
        total = sum(samples.values()) or 1
        per_check = cpu / requests * 1e6
        print(
            f"{args.token} token, 1 worker, wrk -c{args.connections} straight at /auth: "
            f"{rps:.0f} checks/s, worker CPU {per_check:.1f} µs per check "
            f"(py-spy, {total} samples)"
        )
        print(f"  {'stage':<30}{'share':>7}{'µs/check':>10}")
        for stage, stage_samples in samples.most_common():
            share = stage_samples / total
            print(f"  {stage:<30}{share:>7.1%}{share * per_check:>10.1f}")
    finally:
        stop(authsvc)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
