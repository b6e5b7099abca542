"""`authsvc report`: the numbers are the ones a person would count from the decision lines
(compared with an independent count over generated logs), any input is read or refused with a
clear message, and memory stays bounded whatever the log holds."""

from __future__ import annotations

import datetime
import gzip
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from authsvc.cli import main
from authsvc.policy import Decision
from authsvc.tools.report import (
    MAX_DEVICES,
    MAX_GROUPS,
    MAX_HOURS,
    MAX_LINE_BYTES,
    MAX_REASONS,
    MAX_ROUTES,
    OTHER,
    Report,
    build,
    path_prefix,
    text,
)
from authsvc.tools.reportpage import render
from tests.support.decision_lines import Logged, generate

LINES = 20_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Logged], int]:
    """A generated log file, what its decision lines say, and how many lines are not decisions."""
    path = tmp_path_factory.mktemp("report") / "decisions.log"
    records: list[Logged] = []
    noise = 0
    with path.open("w") as log:
        for line, logged in generate(LINES):
            log.write(line)
            if logged is None:
                noise += 1
            else:
                records.append(logged)
    return path, records, noise


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["report", *args], env={})
    out, err = capsys.readouterr()
    return code, out, err


def as_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = run([*args, "--json"], capsys)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


# --- the independent count: what a person would compute from the records ---------------------


# Statuses that say nothing of a failed attestation: none at all, or a token fetched fine.
NOT_SAID = (None, "success")


def route_of(logged: Logged) -> str:
    suffix = "-monitor" if logged.monitored else ""
    return f"auth-binding-{logged.policy}-signing-{logged.signing}{suffix}"


def prefix_of(logged: Logged) -> str:
    return "/".join(logged.uri.split("?")[0].split("/")[:3])


def counted(records: list[Logged], key: Any) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, dict[str, Any]] = {}
    for logged in records:
        group = groups.setdefault(
            key(logged),
            {
                "checks": 0,
                "allow": 0,
                "monitor": 0,
                "deny": 0,
                "monitor_reasons": Counter(),
                "deny_reasons": Counter(),
            },
        )
        group["checks"] += 1
        group[logged.decision] += 1
        if logged.decision != "allow":
            group[f"{logged.decision}_reasons"][logged.reason] += 1
    return groups


def assert_same(row: dict[str, Any], expected: dict[str, Any]) -> None:
    assert (row["checks"], row["allowed"], row["would_refuse"], row["refused"]) == (
        expected["checks"],
        expected["allow"],
        expected["monitor"],
        expected["deny"],
    )
    assert row["reasons"]["monitor"] == dict(expected["monitor_reasons"])
    assert row["reasons"]["deny"] == dict(expected["deny_reasons"])


def test_counts_per_route_and_prefix_match_an_independent_count(
    generated: tuple[Path, list[Logged], int], capsys: pytest.CaptureFixture[str]
) -> None:
    path, records, noise = generated
    result = as_json([str(path)], capsys)
    assert (result["lines"], result["skipped"]) == (len(records), noise)
    expected = counted(records, lambda r: (route_of(r), prefix_of(r)))
    rows = {(row["route"], row["prefix"]): row for row in result["prefixes"]}
    assert rows.keys() == expected.keys()
    for key, row in rows.items():
        assert_same(row, expected[key])
    by_route = counted(records, route_of)
    assert {row["route"] for row in result["routes"]} == by_route.keys()
    for row in result["routes"]:
        assert_same(row, by_route[row["route"]])
    assert_same(result["total"], counted(records, lambda r: "all")["all"])


def test_counts_per_hour_match_an_independent_count(
    generated: tuple[Path, list[Logged], int], capsys: pytest.CaptureFixture[str]
) -> None:
    path, records, _ = generated
    result = as_json([str(path)], capsys)
    hours = [row["hour"] for row in result["hours"]]
    assert len(hours) == 24
    assert hours == sorted(hours)
    # The hour of each line, counted from the UTC time the generator gave it.
    expected = counted(records, lambda r: int(r.time // 3600))
    first_hour = int(records[0].time // 3600)
    for index, row in enumerate(result["hours"]):
        assert_same(row, expected[first_hour + index])


def test_the_verdict_says_what_enforcing_a_monitored_route_would_refuse_and_from_how_many_devices(
    generated: tuple[Path, list[Logged], int], capsys: pytest.CaptureFixture[str]
) -> None:
    path, records, _ = generated
    result = as_json([str(path)], capsys)
    api = [r for r in records if prefix_of(r) == "/api/v1"]
    monitored = [r for r in api if r.decision == "monitor"]
    top_reason, _ = Counter(r.reason for r in monitored).most_common(1)[0]
    devices = {r.did for r in monitored if r.reason == top_reason}
    share = f"{100 * len(monitored) / len(api):.1f}%"
    checks = f"{len(api) / 1000:.1f}k"  # the sentence rounds counts past 10,000
    reported = Counter(r.approov_status for r in monitored if r.approov_status not in NOT_SAID)
    why = ", ".join(f"{status} {count:,}" for status, count in reported.most_common())
    expected = (
        f"enforcing /api/v1 (auth-binding-required-signing-off-monitor) would have refused"
        f" {share} of {checks} checks, mostly {top_reason} from {len(devices)} device ids;"
        f" {reported.total():,} of them the app itself reported as not attested ({why})"
    )
    assert expected in result["verdicts"]
    assert any(
        v.startswith("/login (auth-binding-off-signing-off) is enforced: it refused")
        for v in result["verdicts"]
    )


def test_the_text_report_shows_each_table_and_the_verdicts(
    generated: tuple[Path, list[Logged], int], capsys: pytest.CaptureFixture[str]
) -> None:
    path, records, noise = generated
    code, out, _ = run([str(path)], capsys)
    assert code == 0
    assert out.startswith(f"{len(records):,} decision lines ({noise:,} other lines skipped)")
    for title in (
        "By route policy",
        "By route policy and path prefix",
        "By hour (UTC)",
        "Verdicts",
    ):
        assert f"\n{title}" in out
    api = [r for r in records if prefix_of(r) == "/api/v1"]
    assert re.search(rf"auth-binding-required-signing-off-monitor  /api/v1 +{len(api):,} ", out)


def test_lines_that_are_not_decision_lines_are_skipped_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    decision = '{"time": "2026-11-24T08:00:00.000+00:00", "decision": "allow", "reason": "ok"}'
    path = tmp_path / "mixed.log"
    path.write_text(
        "\n".join(
            [
                decision,
                "",
                "not json at all",
                '{"time": "2026-11-24T08:00:00.000+00:00", "reason": "ok"}',  # no decision
                '{"time": "x", "decision": "maybe", "reason": "ok"}',  # not a decision
                '{"decision": "allow", "reason": "ok"}',  # no time
                decision[:40],  # cut short
                '"a string"',
                f"Nov 24 08:00:00 host authsvc[12]: {decision}",  # journald's prefix: read
            ]
        )
        + "\n"
    )
    result = as_json([str(path)], capsys)
    assert (result["lines"], result["skipped"]) == (2, 7)


def test_gzip_files_stdin_and_several_files_are_read_alike(
    generated: tuple[Path, list[Logged], int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, records, _ = generated
    plain = as_json([str(path)], capsys)
    packed = tmp_path / "decisions.log.1.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert as_json([str(packed)], capsys) == plain
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes())))
    assert as_json([], capsys) == plain
    both = as_json([str(path), str(packed)], capsys)
    assert both["lines"] == 2 * len(records)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.log", "cannot read {path}: No such file or directory"),
        (lambda d: d, "cannot read {path}: Is a directory"),
        (
            lambda d: (
                (d / "broken.gz").write_bytes(gzip.compress(b'{"a": 1}\n' * 100)[:-10])
                and d / "broken.gz"
            ),
            "cannot read {path}: Compressed file ended before the end-of-stream marker was reached",
        ),
    ],
    ids=["missing", "directory", "truncated-gzip"],
)
def test_unreadable_input_exits_2_and_names_it(
    make: Any, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make(tmp_path)
    code, out, err = run([str(path)], capsys)
    assert code == 2
    assert err == f"authsvc report: {message.format(path=path)}\n"
    assert out == ""


@pytest.mark.parametrize(
    ("uri", "segments", "prefix"),
    [
        ("/api/v1/items/7?x=1", 2, "/api/v1"),
        ("/api/v1/items/7?x=1", 1, "/api"),
        ("/api", 2, "/api"),
        ("/", 2, "/"),
        ("https://api.example.com/api/v1/items", 2, "/api/v1"),
        ("//api///v1/x", 2, "/api/v1"),
        (None, 2, "(no uri)"),
        ("", 2, "(no uri)"),
    ],
)
def test_a_prefix_is_the_first_segments_of_the_logged_path(
    uri: str | None, segments: int, prefix: str
) -> None:
    assert path_prefix(uri, segments) == prefix


def test_the_prefix_segments_option_groups_coarser(
    generated: tuple[Path, list[Logged], int], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = generated
    result = as_json([str(path), "--prefix-segments", "1"], capsys)
    assert {row["prefix"] for row in result["prefixes"]} == {"/api", "/login", "/signed"}


def line(
    uri: str,
    did: str = "d",
    decision: str = "monitor",
    *,
    reason: str = "binding_missing",
    time: str = "2026-11-24T08:00:00.000+00:00",
    binding: str = "required",
    binding_field: str = "binding",
) -> bytes:
    fields = {
        "time": time,
        "decision": decision,
        "reason": reason,
        binding_field: binding,
        "signing": "off",
        "monitor": True,
        "uri": uri,
        "did": did,
    }
    return json.dumps(fields).encode()


def test_distinct_prefixes_beyond_the_bound_are_counted_together() -> None:
    """Ids in the first path segments (/users/123) must not grow memory without end."""
    counting = Report()
    for number in range(MAX_GROUPS + 500):
        counting.add_line(line(f"/users/{number}/profile"))
    assert len(counting.prefixes) == MAX_GROUPS + 1
    other = counting.prefixes[("auth-binding-required-signing-off-monitor", OTHER)]
    assert other.checks == 500
    assert counting.total.checks == MAX_GROUPS + 500


def test_device_ids_remembered_per_reason_are_bounded() -> None:
    counting = Report()
    for number in range(MAX_DEVICES * 3):
        counting.add_line(line("/api/v1", did=f"device-{number}"))
    (tally,) = counting.prefixes.values()
    assert tally.devices is not None
    assert len(tally.devices["binding_missing"]) == MAX_DEVICES
    assert f"from {MAX_DEVICES}+ device ids" in counting.verdicts()[0]


def test_a_monitored_route_that_refused_nothing_says_so() -> None:
    counting = Report()
    counting.add_line(line("/api/v1", decision="allow"))
    assert counting.verdicts() == [
        "enforcing /api/v1 (auth-binding-required-signing-off-monitor) would have refused none"
        " of 1 checks"
    ]


# --- the HTML page --------------------------------------------------------------------------


def test_the_html_page_is_self_contained_with_both_charts_and_the_table(
    generated: tuple[Path, list[Logged], int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = generated
    page = tmp_path / "report.html"
    code, _, _ = run([str(path), "--html", str(page)], capsys)
    assert code == 0
    html = page.read_text()
    for part in ('<svg id="hourly"', '<svg id="reasons"', "<table>", "would have refused"):
        assert part in html
    # Nothing fetched: no script, no external reference (the SVG namespace is a name, not a fetch).
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=|url\(|@import""", html, re.IGNORECASE)


def test_what_the_log_says_is_escaped_in_the_page() -> None:
    counting = Report()
    counting.add_line(line("/<script>alert(1)</script>/x"))
    html = render(counting)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_report_reads_no_settings_and_needs_no_key(
    generated: tuple[Path, list[Logged], int], capsys: pytest.CaptureFixture[str]
) -> None:
    """A log can be read anywhere: an operator's laptop has no Approov secret."""
    path, _, _ = generated
    assert run([str(path)], capsys)[0] == 0


# --- a hostile or damaged log: every input is data, never a crash, in bounded memory -------


@pytest.mark.parametrize(
    "nested",
    [b'journal prefix {"a":' + b"[" * 5000, b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"],
    ids=["unclosed", "closed"],
)
def test_a_line_nested_deeper_than_json_reads_is_skipped_and_counted(nested: bytes) -> None:
    counting = Report()
    counting.add_line(nested)
    counting.add_line(line("/api/v1"))
    assert (counting.too_deep, counting.lines, counting.skipped) == (1, 1, 0)


def test_an_over_long_line_is_skipped_and_counted_without_being_held_whole(
    tmp_path: Path,
) -> None:
    import tracemalloc  # noqa: PLC0415 - only this test measures

    log = tmp_path / "log.gz"
    with gzip.open(log, "wb") as packed:
        packed.write(line("/api/v1") + b"\n" + b'{"uri": "' + b"a" * (20 * 2**20) + b"\n")
        packed.write(line("/login") + b"\n")
    tracemalloc.start()
    counting = build([str(log)])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (counting.lines, counting.too_long, counting.skipped) == (2, 1, 0)
    assert peak < 8 * MAX_LINE_BYTES


def test_distinct_reasons_beyond_the_bound_are_counted_together() -> None:
    counting = Report()
    for number in range(MAX_REASONS + 50):
        counting.add_line(line("/api/v1", reason=f"reason_{number}"))
    reasons = counting.total.reasons[Decision.MONITOR]
    assert len(reasons) == MAX_REASONS + 1
    assert (reasons[OTHER], sum(reasons.values())) == (50, MAX_REASONS + 50)


def test_distinct_hours_beyond_the_bound_are_counted_together() -> None:
    counting = Report()
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    for hours in range(MAX_HOURS + 30):
        moment = start + datetime.timedelta(hours=hours)
        counting.add_line(line("/api/v1", time=moment.isoformat(timespec="milliseconds")))
    assert len(counting.hours) == MAX_HOURS + 1
    assert counting.hours[OTHER].checks == 30


def test_distinct_route_policies_beyond_the_bound_are_counted_together() -> None:
    counting = Report()
    for number in range(MAX_ROUTES + 20):
        counting.add_line(line("/api/v1", binding=f"mode-{number}"))
    assert len(counting.routes) == MAX_ROUTES + 1
    assert counting.routes[OTHER].checks == 20


def test_a_time_that_is_not_a_timestamp_is_not_a_decision_line() -> None:
    counting = Report()
    counting.add_line(line("/api/v1", time="\x1b[31m bogus"))
    assert (counting.lines, counting.skipped, counting.first) == (0, 1, None)


def test_a_burst_of_junk_paths_sent_first_cannot_hide_the_heaviest_prefixes() -> None:
    """Space-Saving: a group that keeps coming keeps its row; one-off paths share (other)."""
    counting = Report()
    for number in range(MAX_GROUPS * 2):
        counting.add_line(line(f"/junk-{number}/x"))
    for number in range(300):
        counting.add_line(line("/api/v1/items"))
        counting.add_line(line(f"/late-junk-{number}/x"))
        if number % 2:
            counting.add_line(line("/login"))
    route = "auth-binding-required-signing-off-monitor"
    assert counting.prefixes[(route, "/api/v1")].checks == 300
    assert counting.prefixes[(route, "/login")].checks == 150
    assert len(counting.prefixes) <= MAX_GROUPS + 1
    assert sum(tally.checks for tally in counting.prefixes.values()) == counting.total.checks


CONTROLS = "\x1b[2J\x07\u009b31m\u202e"


def test_controls_from_the_log_are_escaped_in_the_text_report() -> None:
    counting = Report()
    counting.add_line(line(f"/{CONTROLS}/x", reason=f"binding{CONTROLS}"))
    printed = text(counting)
    assert not any(not c.isprintable() and c != "\n" for c in printed)
    assert "/\\x1b[2J\\x07\\x9b31m\\u202e" in printed


def test_a_lone_surrogate_in_the_log_crashes_neither_text_nor_html(tmp_path: Path) -> None:
    counting = Report()
    counting.add_line(
        b'{"time": "2026-11-24T08:00:00.000+00:00", "decision": "monitor",'
        b' "reason": "x\\udc80", "uri": "/\\ud800/y", "did": "\\ud800"}'
    )
    assert counting.lines == 1
    page = tmp_path / "report.html"
    page.write_text(render(counting), encoding="utf-8")
    assert "/\\ud800" in text(counting)
    assert "/\\ud800" in page.read_text()


def test_a_hostile_log_gives_a_report_and_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "hostile.log"
    log.write_bytes(
        b'journal prefix {"a":'
        + b"[" * 5000
        + b"\n"
        + b"x" * (MAX_LINE_BYTES * 3)
        + b"\n"
        + line(f"/{CONTROLS}")
        + b"\n"
    )
    code, out, _ = run([str(log)], capsys)
    assert code == 0
    assert "1 decision lines" in out
    assert "1 too deep" in out
    assert "1 too long" in out


# --- the fetch status the app reported ------------------------------------------------------


def test_each_groups_failures_are_split_by_the_status_the_app_reported(
    generated: tuple[Path, list[Logged], int], capsys: pytest.CaptureFixture[str]
) -> None:
    """In --json every tally with failures carries `approov_status`, `none` for a request
    that reported none; it matches a count of what each line said."""
    path, records, _ = generated
    expected: dict[tuple[str, str], Counter[str]] = {}
    for logged in records:
        if logged.decision != "allow":
            group = expected.setdefault((route_of(logged), prefix_of(logged)), Counter())
            group[logged.approov_status or "none"] += 1
    result = as_json([str(path)], capsys)
    split = {(row["route"], row["prefix"]): row.get("approov_status") for row in result["prefixes"]}
    assert split == {group: dict(statuses) for group, statuses in expected.items()} | {
        group: None for group in split if group not in expected
    }
    assert any("no_network" in (statuses or {}) for statuses in split.values())


def test_the_verdict_says_how_many_would_be_refusals_the_app_reported_as_not_attested() -> None:
    counting = Report()
    for status in ("no_network", "no_network", "rejected", "success", None):
        fields = json.loads(line("/api/v1"))
        fields["reason"] = "token_missing"
        if status is not None:
            fields["approov_status"] = status
        counting.add_line(json.dumps(fields).encode())
    (verdict,) = counting.verdicts()
    assert verdict.endswith(
        "; 3 of them the app itself reported as not attested (no_network 2, rejected 1)"
    )
    assert "no_network" in text(counting).split("Failures by the fetch status")[1]


def test_a_status_outside_the_sdks_vocabulary_is_counted_as_other() -> None:
    counting = Report()
    for number in range(50):
        fields = json.loads(line("/api/v1"))
        fields["approov_status"] = f"made-up-{number}"
        counting.add_line(json.dumps(fields).encode())
    assert counting.total.statuses[Decision.MONITOR] == Counter({"other": 50})


def test_the_page_shows_the_failures_by_fetch_status(
    generated: tuple[Path, list[Logged], int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = generated
    page = tmp_path / "report.html"
    assert run([str(path), "--html", str(page)], capsys)[0] == 0
    html = page.read_text()
    assert "<h2>Failures by the fetch status the app reported</h2>" in html
    assert "<td>no_network</td>" in html


def test_a_line_of_authsvc_0_1_names_its_binding_policy_by_the_old_field() -> None:
    counting = Report()
    counting.add_line(line("/api/v1", binding="off", binding_field="policy"))
    assert list(counting.routes) == ["auth-binding-off-signing-off-monitor"]
