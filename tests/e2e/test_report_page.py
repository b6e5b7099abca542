"""The `authsvc report --html` page in a real browser (Debian's headless chromium): it renders
without console errors and its charts draw; the example page in docs/ is the one the code makes
today."""

from __future__ import annotations

from pathlib import Path

import pytest

from authsvc.tools.report import Report
from authsvc.tools.reportpage import COLOURS, render
from tests.support.browser import colours, console_errors, rgb, screenshot
from tests.support.decision_lines import generate

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PAGE = REPO / "docs" / "report-example.html"
# What docs/report-example.html was made from (`make report-example`).
EXAMPLE_LINES = 50_000
EXAMPLE_TITLE = (
    "authsvc report of a synthetic log (tests/support/decision_lines.py), for illustration"
)
# A chart swatch in the legend is 12 x 12: a drawn chart has many times that of its colours.
LEGEND_SWATCH_PIXELS = 144


def example_report(lines: int = EXAMPLE_LINES) -> Report:
    report = Report()
    for line, _ in generate(lines):
        report.add_line(line.encode())
    return report


def test_the_report_page_renders_without_console_errors_and_its_charts_draw(
    tmp_path: Path,
) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(example_report(5_000)))
    picture, log = screenshot(page, tmp_path)
    assert console_errors(log) == []
    seen = colours(picture)
    for decision, colour in COLOURS.items():  # in both hourly charts, the reasons and the legend
        drawn = seen[rgb(colour)]
        assert drawn > 2 * LEGEND_SWATCH_PIXELS, f"no {decision} bars drawn ({drawn} pixels)"


def test_a_page_with_a_console_error_is_caught(tmp_path: Path) -> None:
    """Guards the guard: chromium's log does show a page's console errors."""
    page = tmp_path / "broken.html"
    page.write_text("<script>console.error('planted'); undefinedFunction();</script>")
    _, log = screenshot(page, tmp_path)
    errors = console_errors(log)
    assert any("planted" in line for line in errors), log[-2000:]
    assert any("undefinedFunction" in line for line in errors), log[-2000:]


def test_the_example_page_in_the_docs_is_what_the_code_makes_today() -> None:
    """docs/report-example.html comes from a synthetic log (tests/support/decision_lines.py)."""
    assert EXAMPLE_PAGE.read_text() == render(example_report(), EXAMPLE_TITLE)
