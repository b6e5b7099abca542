"""`make profile`: where a check's CPU goes in the running server, stage by stage.

One authsvc worker (shipped defaults, decision log on, written to a file) is loaded straight
with wrk (no proxy) while py-spy samples it, once per token stream: `hit` (one valid token,
answered from the cache), `miss` (100,000 distinct valid tokens) and `deny` (a forged one: the
signature fails). The worker's CPU time over the run (from
/proc/<pid>/stat) divided by the checks answered is its CPU µs per check; each sample is given
to the stage of its innermost authsvc (or uvicorn) frame, and a stage's µs is its share of the
samples times that. py-spy sees Python frames only: C code is counted in the Python frame that
called it (llhttp's parsing and the answer's socket write in authsvc's protocol), and the rest
of uvloop's C code (socket reads, epoll, callbacks) is the "event loop" stage.
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
from dataclasses import dataclass
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
    ("check endpoint (route, answer, glue)", re.compile(r"authsvc/http/endpoint\.py")),
    (
        "HTTP: authsvc protocol, llhttp, socket writes",
        re.compile(r"authsvc/http/(protocol|transport)\.py"),
    ),
    (
        "uvicorn protocol + ASGI",
        re.compile(r"authsvc/http/app\.py|uvicorn/protocols/|asyncio/(?!runners)"),
    ),
)
# Samples with no frame above: the worker's own loop (server, worker, uvloop's run).
OTHER = "event loop (uvloop C: epoll, socket reads)"
KINDS = ("hit", "miss", "deny")


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


@dataclass(frozen=True)
class Profile:
    rate: float
    cpu_us: float  # the worker's CPU per check
    stages: dict[str, float]  # the share of the samples per stage
    samples: int


def profile(kind: str, seconds: int, connections: int, py_spy: str, workdir: Path) -> Profile:
    """A fresh one-worker authsvc loaded with `kind` tokens: its rate, CPU and stage shares."""
    port = free_port()
    headers = ["-H", f"Authorization: {BINDING}"]
    if kind == "miss":
        tokens = workdir / "tokens.txt"
        if not tokens.exists():
            tokens.write_text(
                "\n".join(
                    mint(SECRET, lifetime_seconds=3600, binding=BINDING, did=f"d{i}")
                    for i in range(100_000)
                )
                + "\n"
            )
        extra = ["-s", str(BENCH / "lua" / "rotate.lua"), "--", str(tokens), "/auth"]
    else:
        token = mint(SECRET, lifetime_seconds=3600, binding=BINDING, did="bench")
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        extra = ["-H", f"Approov-Token: {token if kind == 'hit' else forged}"]
    with (workdir / "authsvc.log").open("ab") as log:
        authsvc = spawn(authsvc_serve(f"127.0.0.1:{port}", 1), log, authsvc_env())
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", authsvc)
        (worker,) = children(authsvc.pid)
        url = f"http://127.0.0.1:{port}/auth"

        def wrk(duration: int) -> list[str]:
            return ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url, *headers, *extra]

        subprocess.run(wrk(2), capture_output=True, check=True)  # warm up
        # Unsampled first: the rate and the CPU per check; then the same run sampled, for shares.
        cpu_before = cpu_seconds(worker)
        output = subprocess.run(wrk(seconds), capture_output=True, text=True, check=True).stdout
        cpu = cpu_seconds(worker) - cpu_before
        raw = workdir / f"stacks-{kind}.txt"
        sampler = subprocess.Popen(
            [
                *(py_spy, "record", "--pid", str(worker), "--format", "raw", "--rate", "250"),
                *("--nonblocking", "--duration", str(seconds), "-o", str(raw)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        subprocess.run(wrk(seconds), capture_output=True, check=True)
        sampler.wait(timeout=seconds + 30)
    finally:
        stop(authsvc)
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    samples: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, stack_samples = line.rpartition(" ")
        samples[stage_of(stack)] += int(stack_samples)
    total = sum(samples.values()) or 1
    shares = {stage: count / total for stage, count in samples.items()}
    return Profile(rate, cpu / requests * 1e6, shares, total)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--token",
        choices=KINDS,
        action="append",
        help="the token stream (repeatable; default: hit, miss and deny in turn)",
    )
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if shutil.which("wrk") is None or not Path(py_spy).exists():
        print("profile: needs wrk (apt) and py-spy (pip install py-spy)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="authsvc-profile-"))
    try:
        profiles = {
            kind: profile(kind, args.seconds, args.connections, py_spy, workdir)
            for kind in args.token or KINDS
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"1 worker (shipped defaults, decision log on), wrk -c{args.connections} straight at "
        "/auth; µs of worker CPU per check, by stage (py-spy's share of samples x the CPU)"
    )
    kinds = list(profiles)

    def line(label: str, values: list[float], decimals: int = 1) -> None:
        print(f"  {label:<44}" + "".join(f"{value:>10.{decimals}f}" for value in values))

    print(f"  {'stage':<44}" + "".join(f"{kind:>10}" for kind in kinds))
    for stage in [*(name for name, _ in STAGES), OTHER]:
        line(stage, [profiles[k].stages.get(stage, 0.0) * profiles[k].cpu_us for k in kinds])
    line("worker CPU per check", [profiles[k].cpu_us for k in kinds])
    line("checks/s", [profiles[k].rate for k in kinds], 0)
    line("py-spy samples", [profiles[k].samples for k in kinds], 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
