"""`make mutate`'s verdict: mutmut's results per module, against the committed list of
equivalent mutants (mutation-equivalents.txt: a mutant's name, two spaces, why it changes
nothing a test could see).

Exits 1 if fewer than TARGET of the mutants outside that list are killed, or if the list names
a mutant that is not a survivor any more (a stale entry hides nothing, and is removed).
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from mutmut.stats import status_by_exit_code

REPO = Path(__file__).resolve().parents[2]
EQUIVALENTS = REPO / "mutation-equivalents.txt"
TARGET = 0.95


def equivalents() -> dict[str, str]:
    listed = {}
    for line in EQUIVALENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, why = line.partition("  ")
            listed[name.strip()] = why.strip()
    return listed


def statuses() -> dict[str, str]:
    found = {}
    for meta in sorted((REPO / "mutants").rglob("*.meta")):
        for name, exit_code in json.loads(meta.read_text())["exit_code_by_key"].items():
            found[name] = status_by_exit_code[exit_code]
    return found


def module_of(mutant: str) -> str:
    return mutant.split(".x_", 1)[0].split(".xǁ", 1)[0]


def main() -> int:
    found, listed = statuses(), equivalents()
    if not found:
        print("no results: run `mutmut run` first", file=sys.stderr)
        return 1
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in found.items():
        kind = "equivalent" if name in listed and status == "survived" else status
        counts[module_of(name)][kind] += 1
    header = ("mutants", 8), ("killed", 8), ("survived", 9), ("equivalent", 11), ("killed %", 10)
    print(f"{'module':<32}" + "".join(f"{name:>{width}}" for name, width in header))
    total: Counter[str] = Counter()
    for module in sorted(counts):
        c = counts[module]
        total += c
        print(
            f"{module:<32}{sum(c.values()):>8}{c['killed']:>8}{c['survived']:>9}"
            f"{c['equivalent']:>11}{rate(c):>9.1%}"
        )
    print(
        f"{'all':<32}{sum(total.values()):>8}{total['killed']:>8}{total['survived']:>9}"
        f"{total['equivalent']:>11}{rate(total):>9.1%}"
    )
    others = {status for status in total if status not in ("killed", "survived", "equivalent")}
    if others:
        print(f"also: {', '.join(f'{total[s]} {s}' for s in sorted(others))}")
    stale = sorted(name for name in listed if found.get(name) != "survived")
    for name in stale:
        print(f"listed as equivalent but not a survivor: {name}")
    for name in sorted(n for n, s in found.items() if s == "survived" and n not in listed):
        print(f"survived: {name}  (mutmut show {name})")
    met = rate(total) >= TARGET
    print(
        f"killed outside the equivalents: {rate(total):.1%} (target {TARGET:.0%}: "
        f"{'MET' if met else 'MISSED'})"
    )
    return 0 if met and not stale else 1


def rate(counts: Counter[str]) -> float:
    considered = sum(counts.values()) - counts["equivalent"]
    return counts["killed"] / considered if considered else 1.0


if __name__ == "__main__":
    raise SystemExit(main())
