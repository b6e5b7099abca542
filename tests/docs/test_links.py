"""The docs hold together: every relative link in README.md and docs/ reaches a file, every anchor
a heading of its page (GitHub's slugs), and every page says first whom it is for."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^ *```.*?^ *```", re.M | re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _FENCE.sub("", page.read_text()), re.M):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    return found


def links(page: Path) -> list[str]:
    return [
        target
        for target in _LINK.findall(_FENCE.sub("", page.read_text()))
        if not re.match(r"[a-z]+:", target)  # https:, mailto:
    ]


def test_a_heading_anchor_is_the_slug_github_makes() -> None:
    assert slug("Message signing (RFC 9421, Approov installation signatures)") == (
        "message-signing-rfc-9421-approov-installation-signatures"
    )
    assert slug("Rollout: monitor, read the report, enforce") == (
        "rollout-monitor-read-the-report-enforce"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert broken == []


@pytest.mark.parametrize("page", PAGES[1:], ids=lambda page: page.name)
def test_each_docs_page_opens_with_whom_it_is_for_and_what_they_get(page: Path) -> None:
    first_paragraph = page.read_text().split("\n\n")[1]
    assert first_paragraph.startswith("**For** ")
    assert "**You get**" in first_paragraph


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(REPO / target.partition("#")[0]).resolve() for target in links(REPO / "README.md")}
    assert [page.name for page in PAGES[1:] if page not in linked] == []
