"""The `authsvc report --html` page: one self-contained file (inline SVG and CSS, no script, no
network), with the decisions per hour, the reasons, the table per route and prefix, and a verdict
in plain words per route."""

from __future__ import annotations

from html import escape

from authsvc.policy import Decision
from authsvc.tools.report import FAILURES, Report, Tally, lines_read, percent, status_rows

# Decision colours, as the legend shows them.
COLOURS = {Decision.ALLOW: "#3a7d44", Decision.MONITOR: "#e0a100", Decision.DENY: "#c0392b"}
LABELS = {Decision.ALLOW: "allowed", Decision.MONITOR: "would be refused", Decision.DENY: "refused"}
_CHART_WIDTH, _CHART_HEIGHT, _MARGIN = 960, 260, 48
_REASON_BARS = 12

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child, th:last-child, td.reasons { text-align: left; }
.legend span { display: inline-block; margin-right: 1.5em; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 6px; }
.verdicts li { margin: .3em 0; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
"""


DEFAULT_TITLE = "authsvc: what enforcing would refuse"


def render(report: Report, title: str = DEFAULT_TITLE) -> str:
    span = f"{report.first} to {report.last}" if report.first else "no decisions"
    legend = "".join(
        f'<span><i style="background:{COLOURS[d]}"></i>{LABELS[d]}</span>' for d in COLOURS
    )
    verdicts = "".join(f"<li>{escape(s)}</li>" for s in report.verdicts()) or "<li>no checks</li>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<style>{" ".join(_STYLE.split())}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<p>{escape(lines_read(report))}, {escape(span)}.</p>
<h2>Verdicts</h2>
<ul class="verdicts">{verdicts}</ul>
<h2>Decisions per hour (UTC)</h2>
<p class="legend">{legend}</p>
{hourly_chart(report, "hourly", tuple(COLOURS))}
<h2>Failures per hour (UTC), on their own scale</h2>
{hourly_chart(report, "failures", FAILURES)}
<h2>Reasons of the failures</h2>
{reasons_chart(report.total)}
<h2>By route policy and path prefix (first {report.prefix_segments} segments)</h2>
{table(report)}
<h2>Failures by the fetch status the app reported</h2>
{status_table(report.total)}
</body>
</html>
"""


def hourly_chart(report: Report, name: str, decisions: tuple[Decision, ...]) -> str:
    """A bar per hour, stacking `decisions`, scaled to the tallest stack."""
    hours = sorted(report.hours.items())
    tallest = max((sum(t.decisions[d] for d in decisions) for _, t in hours), default=0)
    if not tallest:
        return "<p>None.</p>"
    plot_width, plot_height = _CHART_WIDTH - 2 * _MARGIN, _CHART_HEIGHT - 2 * _MARGIN
    step = plot_width / len(hours)
    bars, labels = [], []
    label_every = max(1, len(hours) // 12)
    for index, (hour, tally) in enumerate(hours):
        x = _MARGIN + index * step
        base = float(_MARGIN + plot_height)
        for decision in decisions:
            colour = COLOURS[decision]
            height = plot_height * tally.decisions[decision] / tallest
            if height <= 0:
                continue
            base -= height
            bars.append(
                f'<rect x="{x + step * 0.1:.1f}" y="{base:.1f}" width="{step * 0.8:.1f}"'
                f' height="{height:.1f}" fill="{colour}">'
                f"<title>{escape(hour)}: {tally.decisions[decision]:,} {LABELS[decision]}</title>"
                "</rect>"
            )
        if index % label_every == 0:
            labels.append(
                f'<text x="{x + step / 2:.1f}" y="{_CHART_HEIGHT - _MARGIN + 16}"'
                f' text-anchor="middle">{escape(hour[5:])}h</text>'
            )
    axis = (
        f'<line x1="{_MARGIN}" y1="{_MARGIN + plot_height}" x2="{_CHART_WIDTH - _MARGIN}"'
        f' y2="{_MARGIN + plot_height}" stroke="#888"/>'
        f'<text x="{_MARGIN - 6}" y="{_MARGIN + 4}" text-anchor="end">{tallest:,}</text>'
        f'<text x="{_MARGIN - 6}" y="{_MARGIN + plot_height}" text-anchor="end">0</text>'
    )
    return _svg(name, _CHART_HEIGHT, axis + "".join(bars) + "".join(labels))


def reasons_chart(total: Tally) -> str:
    """A bar per failure reason, split into would-be refusals and refusals."""
    reasons = total.top_reasons(count=_REASON_BARS)
    if not reasons:
        return "<p>No failures.</p>"
    row, label_width = 24, 260
    longest = reasons[0][1]
    bar_room = _CHART_WIDTH - label_width - 90
    parts = []
    for index, (reason, count) in enumerate(reasons):
        y = 8 + index * row
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 14}" text-anchor="end">{escape(reason)}</text>'
        )
        x = float(label_width)
        for decision in FAILURES:
            number = total.reasons[decision][reason]
            width = bar_room * number / longest
            if width > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{row - 8}"'
                    f' fill="{COLOURS[decision]}"><title>{escape(reason)}: {number:,}'
                    f" {LABELS[decision]}</title></rect>"
                )
                x += width
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 14}">{count:,}</text>')
    return _svg("reasons", 16 + len(reasons) * row, "".join(parts))


def table(report: Report) -> str:
    head = (
        "<tr><th>route policy</th><th>path prefix</th><th>checks</th><th>allowed</th>"
        "<th>would be refused</th><th>refused</th><th>top reasons</th></tr>"
    )
    rows = []
    for (route, prefix), tally in sorted(report.prefixes.items()):
        cells = "".join(
            f"<td>{number:,} ({percent(number, tally.checks)})</td>"
            for number in (tally.allowed, tally.would_refuse, tally.refused)
        )
        reasons = ", ".join(f"{escape(r)} {n:,}" for r, n in tally.top_reasons())
        rows.append(
            f"<tr><td>{escape(route)}</td><td>{escape(prefix)}</td><td>{tally.checks:,}</td>"
            f'{cells}<td class="reasons">{reasons}</td></tr>'
        )
    return f"<table>{head}{''.join(rows)}</table>"


def status_table(total: Tally) -> str:
    """What the apps said of their token fetch on the failures: `none` when they said nothing
    (a client without the SDK, or an SDK that does not send it)."""
    rows = "".join(
        f"<tr><td>{escape(status)}</td><td>{monitor:,}</td><td>{deny:,}</td></tr>"
        for status, monitor, deny in status_rows(total)
    )
    if not rows:
        return "<p>No failures.</p>"
    head = "<tr><th>fetch status</th><th>would be refused</th><th>refused</th></tr>"
    return f"<table>{head}{rows}</table>"


def _svg(name: str, height: int, body: str) -> str:
    return (
        f'<svg id="{name}" xmlns="http://www.w3.org/2000/svg" width="{_CHART_WIDTH}"'
        f' height="{height}" viewBox="0 0 {_CHART_WIDTH} {height}" role="img">{body}</svg>'
    )
