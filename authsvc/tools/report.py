"""`authsvc report`: what enforcing would refuse, counted from authsvc's decision lines.

Streams the JSON decision lines (plain or gzip files, or stdin; a line may carry a prefix such
as journald's or `kubectl logs --timestamps`'s before its JSON) in bounded memory, and counts per
route policy, per route policy and path prefix, and per hour: checks, allowed, would be refused
if enforced (the `monitor` decisions: a monitored route's failures, or the global monitor
settings'), refused, and the reasons of the failures. Lines that are not decision lines are
skipped and counted.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar, cast

DECISIONS = ("allow", "monitor", "deny")
DEFAULT_PREFIX_SEGMENTS = 2
# Bounds on what is kept, whatever the log holds: distinct (route, prefix) groups (the rest
# are counted under OTHER_PREFIX) and distinct device ids remembered per group and reason.
MAX_GROUPS = 1000
MAX_DEVICES = 100
OTHER_PREFIX = "(other)"
UNKNOWN_PREFIX = "(no uri)"
_GZIP_MAGIC = b"\x1f\x8b"

K = TypeVar("K")


class Unreadable(Exception):
    """An input that cannot be read; the message names it and says why."""


@dataclass
class Tally:
    """The decisions of one group of checks."""

    checks: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    reasons: dict[str, Counter[str]] = field(
        default_factory=lambda: {"monitor": Counter(), "deny": Counter()}
    )
    """Per failed decision (monitor, deny), how often each reason."""
    devices: dict[str, set[str]] = field(default_factory=dict)
    """Per reason of a would-be refusal, the device ids seen (at most MAX_DEVICES)."""

    def add(self, decision: str, reason: str, did: object) -> None:
        self.checks += 1
        self.decisions[decision] += 1
        if decision == "allow":
            return
        self.reasons[decision][reason] += 1
        if decision == "monitor" and isinstance(did, str):
            seen = self.devices.setdefault(reason, set())
            if len(seen) < MAX_DEVICES:
                seen.add(did)

    @property
    def allowed(self) -> int:
        return self.decisions["allow"]

    @property
    def would_refuse(self) -> int:
        return self.decisions["monitor"]

    @property
    def refused(self) -> int:
        return self.decisions["deny"]

    def top_reasons(self, *decisions: str, count: int = 3) -> list[tuple[str, int]]:
        """The commonest reasons of `decisions` (default: every failure)."""
        counted: Counter[str] = Counter()
        for decision in decisions or ("monitor", "deny"):
            counted.update(self.reasons[decision])
        return counted.most_common(count)

    def as_json(self) -> dict[str, Any]:
        return {
            "checks": self.checks,
            "allowed": self.allowed,
            "would_refuse": self.would_refuse,
            "refused": self.refused,
            "reasons": {d: dict(c.most_common()) for d, c in self.reasons.items()},
        }


@dataclass
class Report:
    prefix_segments: int = DEFAULT_PREFIX_SEGMENTS
    lines: int = 0
    skipped: int = 0
    first: str | None = None
    last: str | None = None
    total: Tally = field(default_factory=Tally)
    routes: dict[str, Tally] = field(default_factory=dict)
    prefixes: dict[tuple[str, str], Tally] = field(default_factory=dict)
    hours: dict[str, Tally] = field(default_factory=dict)

    def add_line(self, raw: bytes) -> None:
        """One line of input: counted if it is a decision line, else skipped."""
        fields = _decision_fields(raw)
        if fields is None:
            self.skipped += 1
            return
        self.lines += 1
        decision, reason, moment = fields["decision"], fields["reason"], fields["time"]
        did = fields.get("did")
        route = route_name(fields)
        prefix = path_prefix(fields.get("uri"), self.prefix_segments)
        if (route, prefix) not in self.prefixes and len(self.prefixes) >= MAX_GROUPS:
            prefix = OTHER_PREFIX
        for tally in (
            self.total,
            _tally(self.routes, route),
            _tally(self.prefixes, (route, prefix)),
            _tally(self.hours, moment[:13]),
        ):
            tally.add(decision, reason, did)
        if self.first is None or moment < self.first:
            self.first = moment
        if self.last is None or moment > self.last:
            self.last = moment

    def verdicts(self) -> list[str]:
        """A sentence per monitored route and prefix, and per enforced one that refused."""
        sentences = []
        for (route, prefix), tally in sorted(self.prefixes.items()):
            where, checks = f"{prefix} ({route})", count_words(tally.checks)
            if tally.would_refuse:
                ((reason, _),) = tally.top_reasons("monitor", count=1)
                share = percent(tally.would_refuse, tally.checks)
                sentences.append(
                    f"enforcing {where} would have refused {share} of {checks} checks,"
                    f" mostly {reason}{_from_devices(tally, reason)}"
                )
            elif route.endswith("-monitor"):
                sentences.append(f"enforcing {where} would have refused none of {checks} checks")
            elif tally.refused:
                ((reason, _),) = tally.top_reasons("deny", count=1)
                share = percent(tally.refused, tally.checks)
                sentences.append(
                    f"{where} is enforced: it refused {share} of {checks} checks, mostly {reason}"
                )
        return sentences

    def as_json(self) -> dict[str, Any]:
        scalars = ("lines", "skipped", "first", "last", "prefix_segments")
        return {
            **{name: getattr(self, name) for name in scalars},
            "total": self.total.as_json(),
            "routes": [{"route": r, **t.as_json()} for r, t in sorted(self.routes.items())],
            "prefixes": [
                {"route": r, "prefix": p, **t.as_json()}
                for (r, p), t in sorted(self.prefixes.items())
            ],
            "hours": [{"hour": h, **t.as_json()} for h, t in sorted(self.hours.items())],
            "verdicts": self.verdicts(),
        }


def _tally(tallies: dict[K, Tally], key: K) -> Tally:
    tally = tallies.get(key)
    if tally is None:
        tally = tallies[key] = Tally()
    return tally


def _decision_fields(raw: bytes) -> dict[str, Any] | None:
    start = raw.find(b"{")
    if start < 0:
        return None
    try:
        fields = json.loads(raw[start:])
    except ValueError:
        return None
    if (
        isinstance(fields, dict)
        and fields.get("decision") in DECISIONS
        and isinstance(fields.get("reason"), str)
        and isinstance(fields.get("time"), str)
    ):
        return fields
    return None


def route_name(fields: dict[str, Any]) -> str:
    """The route policy a decision was made under, named as the proxy names it."""
    name = "auth"
    if isinstance(fields.get("policy"), str):
        name += f"-binding-{fields['policy']}"
    if isinstance(fields.get("signing"), str):
        name += f"-signing-{fields['signing']}"
    return name + ("-monitor" if fields.get("monitor") is True else "")


def path_prefix(uri: object, segments: int) -> str:
    """The first `segments` segments of the logged URI's path: `/api/v1` of
    `https://host/api/v1/items/7?x=1`."""
    if not isinstance(uri, str) or not uri:
        return UNKNOWN_PREFIX
    path = uri.split("?", 1)[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    parts = [part for part in path.split("/") if part][:segments]
    return "/" + "/".join(parts)


def percent(part: int, whole: int) -> str:
    if not whole:
        return "0%"
    value = 100 * part / whole
    return f"{value:.1f}%" if value >= 0.1 or not part else f"{value:.2g}%"


def count_words(count: int) -> str:
    """1,234 / 12.3k / 1.2M, as a sentence reads it."""
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    if count >= 10_000:
        return f"{count / 1_000:.1f}k"
    return f"{count:,}"


def _from_devices(tally: Tally, reason: str) -> str:
    devices = tally.devices.get(reason, set())
    if not devices:
        return ", from no verified device id"
    many = "+" if len(devices) >= MAX_DEVICES else ""
    noun = "device id" if len(devices) == 1 else "device ids"
    return f" from {len(devices)}{many} {noun}"


# --- reading ------------------------------------------------------------------------------------


@contextmanager
def opened(name: str) -> Iterator[Iterable[bytes]]:
    """A file by name (`-`: stdin), gzip or plain by its first bytes; closed after."""
    try:
        raw = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115 (closed below)
    except OSError as error:
        raise Unreadable(f"cannot read {name}: {error.strerror or error}") from None
    with ExitStack() as closing:
        if name != "-":
            closing.callback(raw.close)  # GzipFile never closes a file it was given
        # stdin replaced by a wrapper (a test, a pipe helper) may not be buffered
        stream = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(Any, raw))
        if stream.peek(2)[:2] == _GZIP_MAGIC:
            unpacked = gzip.GzipFile(fileobj=stream, mode="rb")
            closing.callback(unpacked.close)
            yield unpacked
        else:
            yield stream


def read_lines(names: Iterable[str]) -> Iterator[bytes]:
    for name in names:
        with opened(name) as stream:
            try:
                yield from stream
            except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
                raise Unreadable(f"cannot read {name}: {error}") from None


def build(
    names: Iterable[str],
    prefix_segments: int = DEFAULT_PREFIX_SEGMENTS,
    progress: Callable[[int, float], None] | None = None,
) -> Report:
    """The report of every line of `names`; `progress(lines, seconds)` about once a second."""
    report = Report(prefix_segments=prefix_segments)
    started = next_progress = time.monotonic()
    number = 0
    for number, raw in enumerate(read_lines(names), 1):
        report.add_line(raw)
        if progress is not None and not number % 10_000 and time.monotonic() >= next_progress:
            progress(number, time.monotonic() - started)
            next_progress = time.monotonic() + 1
    if progress is not None:
        progress(number, time.monotonic() - started)
    return report


# --- the terminal's view -----------------------------------------------------------------------


def _row(label: str, tally: Tally, width: int) -> str:
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in tally.top_reasons())
    cells = [
        f"{tally.checks:>11,}",
        *(
            f"{number:>11,} {percent(number, tally.checks):>6}"
            for number in (tally.allowed, tally.would_refuse, tally.refused)
        ),
    ]
    return f"  {label:<{width}} " + " ".join(cells) + f"   {reasons}"


def _table(title: str, rows: list[tuple[str, Tally]]) -> list[str]:
    width = max([len(label) for label, _ in rows] + [5])
    head = (
        f"  {'':<{width}} {'checks':>11} {'allowed':>18} {'would refuse':>18}"
        f" {'refused':>18}   top reasons"
    )
    return ["", title, head, *(_row(label, tally, width) for label, tally in rows)]


def text(report: Report) -> str:
    span = f", {report.first} to {report.last}" if report.first else ""
    lines = [
        f"{report.lines:,} decision lines ({report.skipped:,} other lines skipped){span}",
        *_table("By route policy", sorted(report.routes.items())),
        *_table(
            f"By route policy and path prefix (first {report.prefix_segments} segments)",
            [(f"{route}  {prefix}", t) for (route, prefix), t in sorted(report.prefixes.items())],
        ),
        *_table("By hour (UTC)", sorted(report.hours.items())),
        "",
        "Verdicts",
        *(f"  {sentence}" for sentence in report.verdicts() or ["nothing to say: no checks"]),
    ]
    return "\n".join(lines) + "\n"


def terminal_progress(stream: IO[str]) -> Callable[[int, float], None] | None:
    """A progress line for `stream` if it is a terminal."""
    if not stream.isatty():
        return None

    def show(lines: int, seconds: float) -> None:
        rate = lines / seconds if seconds else 0.0
        stream.write(f"\r{lines:,} lines in {seconds:.1f} s, {rate:,.0f} lines/s ")
        stream.flush()

    return show


def write_json(report: Report, stream: IO[str]) -> None:
    json.dump(report.as_json(), stream, indent=2)
    stream.write("\n")
