"""`authsvc report`: what enforcing would refuse, counted from authsvc's decision lines.

Streams the JSON decision lines (plain or gzip files, or stdin; a line may carry a prefix such
as journald's or `kubectl logs --timestamps`'s before its JSON) in bounded memory, and counts per
route policy, per route policy and path prefix, and per hour: checks, allowed, would be refused
if enforced (the `monitor` decisions: a monitored route's failures, or the global monitor
settings'), refused, and the reasons of the failures, each split by the fetch status the app
reported (`approov_status`: an app that could not get a token still sends its request, and says
why). Lines that are not decision lines are skipped and counted.

A log is data, never a reason to stop: a line longer than MAX_LINE_BYTES (never held whole) or
nested deeper than JSON can read is skipped and counted; every table is bounded, whatever the
log holds (the MAX_ constants; what a table cannot hold is counted under OTHER); every text
taken from the log is cut to MAX_LABEL_CHARS and its controls escaped, so a terminal, a page
or a JSON reader gets only printable text.
"""

from __future__ import annotations

import gzip
import heapq
import io
import itertools
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar, cast

from authsvc.observe.decisionlog import LEGACY_BINDING_FIELD, Field
from authsvc.policy import APPROOV_STATUSES, OTHER_STATUS, Decision
from authsvc.routes import MONITOR_SUFFIX, route_name

FAILURES = (Decision.MONITOR, Decision.DENY)
DEFAULT_PREFIX_SEGMENTS = 2
# A decision line is at most 4 KiB (authsvc.observe.decisionlog); a log's prefix adds little.
MAX_LINE_BYTES = 64 * 1024
# Bounds on what is kept, whatever the log holds; what a table cannot hold is counted under
# OTHER. (route, prefix) groups: the heaviest kept (Space-Saving), the rest in their route's
# OTHER row. Reason names and route policies: the first seen (authsvc has about 30 reasons).
MAX_GROUPS = 1000
MAX_ROUTES = 64
MAX_REASONS = 64
MAX_HOURS = 24 * 92
# Device ids remembered per group and reason, for at most MAX_DEVICE_REASONS reasons a group.
MAX_DEVICES = 100
MAX_DEVICE_REASONS = 8
MAX_LABEL_CHARS = 200
OTHER = "(other)"
UNKNOWN_PREFIX = "(no uri)"
NO_STATUS = "none"
# What an app reports when it could not get a token: all but `success` (and an unknown word).
NOT_ATTESTED = APPROOV_STATUSES - {"success"}
# What authsvc writes (DecisionLog): ISO 8601 to the millisecond; anything else is no decision.
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?")
_GZIP_MAGIC = b"\x1f\x8b"
_DECISIONS = frozenset(Decision)

K = TypeVar("K")


class Unreadable(Exception):
    """An input that cannot be read; the message names it and says why."""


@dataclass
class Tally:
    """The decisions of one group of checks."""

    checks: int = 0
    decisions: Counter[Decision] = field(default_factory=Counter)
    reasons: dict[Decision, Counter[str]] = field(
        default_factory=lambda: {failure: Counter() for failure in FAILURES}
    )
    """Per failed decision (monitor, deny), how often each reason."""
    statuses: dict[Decision, Counter[str]] = field(
        default_factory=lambda: {failure: Counter() for failure in FAILURES}
    )
    """Per failed decision (monitor, deny), how often each fetch status the app reported."""
    devices: dict[str, set[int]] | None = None
    """Per reason of a would-be refusal, the hashes of the device ids seen (at most MAX_DEVICES
    for each of at most MAX_DEVICE_REASONS reasons); None where nothing asks (hours, routes)."""

    def add(self, decision: Decision, reason: str, did: object, status: str = NO_STATUS) -> None:
        self.checks += 1
        self.decisions[decision] += 1
        if decision is Decision.ALLOW:
            return
        self.reasons[decision][reason] += 1
        self.statuses[decision][status] += 1
        if decision is Decision.MONITOR and isinstance(did, str) and self.devices is not None:
            _remember(self.devices, reason, {hash(did)})

    def merge(self, other: Tally) -> None:
        """Count `other`'s checks here too (a group that lost its row to a heavier one)."""
        self.checks += other.checks
        self.decisions.update(other.decisions)
        for decision, reasons in other.reasons.items():
            self.reasons[decision].update(reasons)
        for decision, statuses in other.statuses.items():
            self.statuses[decision].update(statuses)
        if self.devices is not None:
            for reason, devices in (other.devices or {}).items():
                _remember(self.devices, reason, devices)

    @property
    def allowed(self) -> int:
        return self.decisions[Decision.ALLOW]

    @property
    def would_refuse(self) -> int:
        return self.decisions[Decision.MONITOR]

    @property
    def refused(self) -> int:
        return self.decisions[Decision.DENY]

    def top_reasons(self, *decisions: Decision, count: int = 3) -> list[tuple[str, int]]:
        """The commonest reasons of `decisions` (default: every failure)."""
        counted: Counter[str] = Counter()
        for decision in decisions or FAILURES:
            counted.update(self.reasons[decision])
        return counted.most_common(count)

    def not_attested(self, decision: Decision) -> list[tuple[str, int]]:
        """The failures of `decision` whose app reported it could not get a token, by status,
        the commonest first."""
        statuses = self.statuses[decision]
        return [(status, n) for status, n in statuses.most_common() if status in NOT_ATTESTED]

    def as_json(self) -> dict[str, Any]:
        failures = self.statuses[Decision.MONITOR] + self.statuses[Decision.DENY]
        return {
            "checks": self.checks,
            "allowed": self.allowed,
            "would_refuse": self.would_refuse,
            "refused": self.refused,
            "reasons": {d: dict(c.most_common()) for d, c in self.reasons.items()},
            **({"approov_status": dict(failures.most_common())} if failures else {}),
        }


def _remember(seen_by_reason: dict[str, set[int]], reason: str, devices: set[int]) -> None:
    seen = seen_by_reason.get(reason)
    if seen is None:
        if len(seen_by_reason) >= MAX_DEVICE_REASONS:
            return
        seen = seen_by_reason[reason] = set()
    for device in devices:
        if len(seen) >= MAX_DEVICES:
            return
        seen.add(device)


Group = tuple[str, str]
"""A route policy and a path prefix."""


@dataclass
class Report:
    prefix_segments: int = DEFAULT_PREFIX_SEGMENTS
    lines: int = 0
    skipped: int = 0
    too_long: int = 0
    too_deep: int = 0
    first: str | None = None
    last: str | None = None
    total: Tally = field(default_factory=Tally)
    routes: dict[str, Tally] = field(default_factory=dict)
    prefixes: dict[Group, Tally] = field(default_factory=dict)
    hours: dict[str, Tally] = field(default_factory=dict)
    _reasons: set[str] = field(default_factory=set)
    # Space-Saving (Metwally, Agrawal, El Abbadi 2005) over the groups: each kept group's
    # checks plus what it inherited from the group whose row it took, and a min-heap of those
    # weights, brought up to date only when the lightest is looked for.
    _weights: dict[Group, int] = field(default_factory=dict)
    _lightest: list[tuple[int, int, Group]] = field(default_factory=list)
    _order: Iterator[int] = field(default_factory=itertools.count)

    def add_line(self, raw: bytes | None) -> None:
        """One line of input (None: one longer than MAX_LINE_BYTES): counted if it is a
        decision line, else skipped."""
        if raw is None:
            self.too_long += 1
            return
        try:
            fields = _decision_fields(raw)
        except RecursionError:
            self.too_deep += 1
            return
        if fields is None:
            self.skipped += 1
            return
        self.lines += 1
        decision, moment = Decision(fields[Field.DECISION]), fields[Field.TIME]
        did = fields.get(Field.DID)
        status = _status(fields.get(Field.APPROOV_STATUS))
        reason = _bounded(self._reasons, label(fields[Field.REASON]), MAX_REASONS)
        self._reasons.add(reason)
        route = _bounded(self.routes, _route(fields), MAX_ROUTES)
        prefix = label(path_prefix(fields.get(Field.URI), self.prefix_segments))
        for tally in (
            self.total,
            _tally(self.routes, route),
            self._group(route, prefix),
            _tally(self.hours, _bounded(self.hours, moment[:13], MAX_HOURS)),
        ):
            tally.add(decision, reason, did, status)
        if self.first is None or moment < self.first:
            self.first = moment
        if self.last is None or moment > self.last:
            self.last = moment

    def _group(self, route: str, prefix: str) -> Tally:
        """The tally of (route, prefix); a new group beyond MAX_GROUPS takes the row of the
        lightest, whose checks move to its route's OTHER row."""
        group = (route, prefix)
        tally = self.prefixes.get(group)
        if tally is None:
            if prefix == OTHER:
                tally = self.prefixes[group] = Tally(devices={})
                return tally
            inherited = self._drop_lightest() if len(self._weights) >= MAX_GROUPS else 0
            tally = self.prefixes[group] = Tally(devices={})
            self._weights[group] = inherited
            heapq.heappush(self._lightest, (inherited, next(self._order), group))
        if group in self._weights:
            self._weights[group] += 1
        return tally

    def _drop_lightest(self) -> int:
        while True:
            weight, _, group = heapq.heappop(self._lightest)
            now = self._weights[group]
            if now == weight:
                break
            heapq.heappush(self._lightest, (now, next(self._order), group))  # it grew since
        del self._weights[group]
        self._group(group[0], OTHER).merge(self.prefixes.pop(group))
        return weight

    def verdicts(self) -> list[str]:
        """A sentence per monitored route and prefix, and per enforced one that refused."""
        sentences = []
        for (route, prefix), tally in sorted(self.prefixes.items()):
            where, checks = f"{prefix} ({route})", count_words(tally.checks)
            if tally.would_refuse:
                reason, share = _mostly(tally, Decision.MONITOR)
                sentences.append(
                    f"enforcing {where} would have refused {share} of {checks} checks,"
                    f" mostly {reason}{_from_devices(tally, reason)}"
                    f"{_reported(tally, Decision.MONITOR)}"
                )
            elif route.endswith(MONITOR_SUFFIX):
                sentences.append(f"enforcing {where} would have refused none of {checks} checks")
            elif tally.refused:
                reason, share = _mostly(tally, Decision.DENY)
                sentences.append(
                    f"{where} is enforced: it refused {share} of {checks} checks, mostly {reason}"
                    f"{_reported(tally, Decision.DENY)}"
                )
        return sentences

    def as_json(self) -> dict[str, Any]:
        scalars = ("lines", "skipped", "too_long", "too_deep", "first", "last", "prefix_segments")
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


def _mostly(tally: Tally, decision: Decision) -> tuple[str, str]:
    """The commonest reason of `decision` in `tally`, and the share of its checks `decision`
    has."""
    ((reason, _),) = tally.top_reasons(decision, count=1)
    return reason, percent(tally.decisions[decision], tally.checks)


def _bounded(known: Collection[str], name: str, bound: int) -> str:
    """`name`, or OTHER when `known` already holds `bound` names and not this one."""
    return name if name in known or len(known) < bound else OTHER


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
        and fields.get(Field.DECISION) in _DECISIONS
        and isinstance(fields.get(Field.REASON), str)
        and isinstance(fields.get(Field.TIME), str)
        and _TIME.fullmatch(fields[Field.TIME])
    ):
        return fields
    return None


def label(value: str) -> str:
    """Text from the log fit to print anywhere: at most MAX_LABEL_CHARS, and each character
    that is not printable (a control, a lone surrogate, a bidi override) as its escape."""
    value = value[:MAX_LABEL_CHARS]
    if value.isprintable():
        return value
    return "".join(char if char.isprintable() else _escape(char) for char in value)


def _escape(char: str) -> str:
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def _route(fields: dict[str, Any]) -> str:
    """The route policy a decision was made under, named as the proxy names it."""
    binding = fields.get(Field.BINDING, fields.get(LEGACY_BINDING_FIELD))
    signing = fields.get(Field.SIGNING)
    return route_name(
        label(binding) if isinstance(binding, str) else None,
        label(signing) if isinstance(signing, str) else None,
        fields.get(Field.MONITOR) is True,
    )


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


def _status(value: object) -> str:
    """The fetch status of a decision line, within the SDKs' vocabulary."""
    if value is None:
        return NO_STATUS
    return value if value in APPROOV_STATUSES else OTHER_STATUS


def _reported(tally: Tally, decision: Decision) -> str:
    """`; 12 of them the app itself reported as not attested (no_network 10, rejected 2)`."""
    statuses = tally.not_attested(decision)
    if not statuses:
        return ""
    count = sum(n for _, n in statuses)
    why = ", ".join(f"{status} {n:,}" for status, n in statuses)
    return f"; {count:,} of them the app itself reported as not attested ({why})"


def _from_devices(tally: Tally, reason: str) -> str:
    devices = (tally.devices or {}).get(reason, set())
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


def read_lines(names: Iterable[str]) -> Iterator[bytes | None]:
    """Each line of each file; None for a line longer than MAX_LINE_BYTES."""
    for name in names:
        with opened(name) as stream:
            try:
                yield from _bounded_lines(stream)
            except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
                raise Unreadable(f"cannot read {name}: {error}") from None


def _bounded_lines(stream: Iterable[bytes]) -> Iterator[bytes | None]:
    """The lines of `stream`, one longer than MAX_LINE_BYTES read past in pieces, never whole."""
    readline = cast(IO[bytes], stream).readline
    while line := readline(MAX_LINE_BYTES + 1):
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line
            continue
        while (rest := readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
            pass
        yield None


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


def lines_read(report: Report) -> str:
    """What the input held: `12 decision lines (3 other lines skipped, 1 too long)`."""
    unread = [
        f"{report.skipped:,} other lines skipped",
        *([f"{report.too_long:,} too long"] if report.too_long else []),
        *([f"{report.too_deep:,} too deep"] if report.too_deep else []),
    ]
    return f"{report.lines:,} decision lines ({', '.join(unread)})"


def status_rows(total: Tally) -> list[tuple[str, int, int]]:
    """Per fetch status the apps reported: would be refused, refused; the commonest first."""
    monitor, deny = total.statuses[Decision.MONITOR], total.statuses[Decision.DENY]
    return sorted(
        ((status, monitor[status], deny[status]) for status in {*monitor, *deny}),
        key=lambda row: (-(row[1] + row[2]), row[0]),
    )


def _status_table(total: Tally) -> list[str]:
    rows = status_rows(total)
    if not rows:
        return []
    width = max(len(status) for status, _, _ in rows)
    return [
        "",
        "Failures by the fetch status the app reported (Approov-Status; none: it said nothing)",
        f"  {'':<{width}} {'would refuse':>12} {'refused':>12}",
        *(f"  {status:<{width}} {m:>12,} {d:>12,}" for status, m, d in rows),
    ]


def text(report: Report) -> str:
    span = f", {report.first} to {report.last}" if report.first else ""
    lines = [
        f"{lines_read(report)}{span}",
        *_table("By route policy", sorted(report.routes.items())),
        *_table(
            f"By route policy and path prefix (first {report.prefix_segments} segments)",
            [(f"{route}  {prefix}", t) for (route, prefix), t in sorted(report.prefixes.items())],
        ),
        *_table("By hour (UTC)", sorted(report.hours.items())),
        *_status_table(report.total),
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
