"""`make bench-report`: `authsvc report` on a large decision log, as a user runs it: lines per
second, and the most memory the process held (its peak RSS, from the kernel).

The log is synthetic (tests/decision_lines.py, authsvc's own DecisionLog writing a rollout's
lines), a block of it repeated to the size asked; it is written to a temporary file and removed.
Target: 1 GB in at most 100 MB of RSS.
"""

from __future__ import annotations

import argparse
import gzip
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.decision_lines import generate

BLOCK_LINES = 200_000
RSS_TARGET_MB = 100


def write_log(path: Path, size: int, packed: bool) -> int:
    """About `size` bytes of decision lines at `path` (gzip if `packed`); the lines written."""
    block = "".join(line for line, _ in generate(BLOCK_LINES)).encode()
    repeats = max(1, round(size / len(block)))
    opener = gzip.open if packed else open
    with opener(path, "wb") as log:
        for _ in range(repeats):
            log.write(block)
    return repeats * BLOCK_LINES


def measure(path: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of `authsvc report --json PATH`."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "authsvc", "report", "--json", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: kilobytes
    return seconds, peak_kb / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gigabytes", type=float, default=1.0, help="log size (default: 1)")
    parser.add_argument("--gzip", action="store_true", help="measure a gzip log instead")
    args = parser.parse_args()
    size = int(args.gigabytes * 1_000_000_000)
    workdir = Path(tempfile.mkdtemp(prefix="authsvc-report-"))
    try:
        path = workdir / ("decisions.log.gz" if args.gzip else "decisions.log")
        lines = write_log(path, size, args.gzip)
        on_disk = path.stat().st_size
        seconds, peak_mb = measure(path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    verdict = "MET" if peak_mb <= RSS_TARGET_MB else "MISSED"
    kind = "gzip" if args.gzip else "plain"
    print(
        f"authsvc report on {lines:,} decision lines ({kind}, {on_disk / 1e9:.2f} GB on disk):"
        f" {seconds:.1f} s, {lines / seconds:,.0f} lines/s, {on_disk / 1e6 / seconds:.0f} MB/s;"
        f" peak RSS {peak_mb:.1f} MB (target <= {RSS_TARGET_MB} MB: {verdict})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
