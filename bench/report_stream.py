"""`make bench-report`: `authsvc report` on a large decision log, as a user runs it: lines per
second, and the most memory the process held (its peak RSS, from the kernel).

The log is synthetic (tests/support/decision_lines.py, authsvc's own DecisionLog writing a rollout's
lines), a block of it repeated to the size asked; it is written to a temporary file and removed.
Target: 1 GB in at most 100 MB of RSS.

The log is written by a child of its own, and the report's peak is that one child's (wait4): a
child's peak RSS counts the pages it was forked with, so a parent holding the log's lines would
be measured instead of the report (it was: 159.6 MB).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BLOCK_LINES = 200_000
RSS_TARGET_MB = 100


def write_log(path: Path, size: int, packed: bool) -> int:
    """About `size` bytes of decision lines at `path` (gzip if `packed`); the lines written.
    Run in a child (`--write`), so this process never holds them."""
    from tests.support.decision_lines import generate  # noqa: PLC0415 (only the writing child needs it)

    block = "".join(line for line, _ in generate(BLOCK_LINES)).encode()
    repeats = max(1, round(size / len(block)))
    opener = gzip.open if packed else open
    with opener(path, "wb") as log:
        for _ in range(repeats):
            log.write(block)
    return repeats * BLOCK_LINES


def run(command: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of `command`, a child of this small process."""
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, command)
    return time.monotonic() - started, usage.ru_maxrss / 1024  # Linux: kilobytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gigabytes", type=float, default=1.0, help="log size (default: 1)")
    parser.add_argument("--gzip", action="store_true", help="measure a gzip log instead")
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)  # the writing child
    args = parser.parse_args()
    size = int(args.gigabytes * 1_000_000_000)
    if args.write is not None:
        print(write_log(args.write, size, args.gzip))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="authsvc-report-"))
    try:
        path = workdir / ("decisions.log.gz" if args.gzip else "decisions.log")
        writer = [
            sys.executable,
            "-m",
            "bench.report_stream",
            "--write",
            str(path),
            "--gigabytes",
            str(args.gigabytes),
        ]
        lines = int(
            subprocess.run(
                writer + (["--gzip"] if args.gzip else []),
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        on_disk = path.stat().st_size
        seconds, peak_mb = run([sys.executable, "-m", "authsvc", "report", "--json", str(path)])
        _, empty_mb = run([sys.executable, "-m", "authsvc", "report", "--json", os.devnull])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    verdict = "MET" if peak_mb <= RSS_TARGET_MB else "MISSED"
    kind = "gzip" if args.gzip else "plain"
    print(
        f"authsvc report on {lines:,} decision lines ({kind}, {on_disk / 1e9:.2f} GB on disk):"
        f" {seconds:.1f} s, {lines / seconds:,.0f} lines/s, {on_disk / 1e6 / seconds:.0f} MB/s;"
        f" peak RSS {peak_mb:.1f} MB (on an empty log {empty_mb:.1f} MB; target <="
        f" {RSS_TARGET_MB} MB: {verdict})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
