"""Every configuration block the docs show is an excerpt of a file the suite runs, so a user who
copies a snippet gets what the tests proved (a snippet that drops a line, such as Caddy's
`header_up -X-Original-*`, fails here).

An nginx or Caddyfile block: its lines, comments and spacing aside, are consecutive lines of one
shipped file; a line `...` marks where the block leaves lines out, and nowhere else may it. A YAML
block: a sub-tree of one shipped document (mappings may leave keys out, lists items).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHIPPED = {
    "nginx": sorted((REPO / "nginx").rglob("*.conf")),
    "caddyfile": [REPO / "caddy" / "Caddyfile"],
    "yaml": [*sorted((REPO / "envoy").glob("*.yaml")), *sorted((REPO / "deploy").rglob("*.yaml"))],
    "haproxy": [REPO / "haproxy" / "haproxy.cfg"],
}
_BLOCK = re.compile(r"^```(?P<language>\w+)\n(?P<text>.*?)^```$", re.MULTILINE | re.DOTALL)


def config_blocks() -> Iterator[tuple[str, str, str]]:
    for doc in DOCS:
        for number, block in enumerate(_BLOCK.finditer(doc.read_text()), 1):
            if block["language"] in SHIPPED:
                yield f"{doc.name}#{number}", block["language"], block["text"]


BLOCKS = list(config_blocks())


def significant_lines(text: str) -> list[str]:
    """The lines that configure something: comments, blank lines and spacing left out."""
    lines = (" ".join(line.split("#", 1)[0].split()) for line in text.splitlines())
    return [line for line in lines if line]


def excerpt_of(block: list[str], lines: list[str]) -> bool:
    """Whether `block` is runs of consecutive `lines`, in order, split where it says `...`."""
    start = 0
    runs = "\n".join(block).split("...")
    for run in (run.strip("\n").split("\n") for run in runs):
        if run == [""]:
            continue
        found = next(
            (at for at in range(start, len(lines)) if lines[at : at + len(run)] == run), None
        )
        if found is None:
            return False
        start = found + len(run)
    return True


def contained(part: Any, whole: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and contained(value, whole[key]) for key, value in part.items()
        )
    if isinstance(part, list):
        return isinstance(whole, list) and all(
            any(contained(item, candidate) for candidate in whole) for item in part
        )
    return bool(part == whole)


def nodes(tree: Any) -> Iterator[Any]:
    yield tree
    children = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, list) else ()
    for child in children:
        yield from nodes(child)


def test_the_docs_show_config_blocks_of_each_kind() -> None:
    """Guards the guard: a renamed fence language would silently check nothing."""
    assert {language for _, language, _ in BLOCKS} == set(SHIPPED)


@pytest.mark.parametrize(("where", "language", "text"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_a_config_block_in_the_docs_is_an_excerpt_of_a_shipped_file(
    where: str, language: str, text: str
) -> None:
    if language == "yaml":
        block = yaml.safe_load(text)
        documents = [
            document
            for path in SHIPPED[language]
            for document in yaml.safe_load_all(path.read_text())
        ]
        assert any(contained(block, node) for document in documents for node in nodes(document)), (
            f"{where}: no shipped YAML file holds this block"
        )
    else:
        wanted = significant_lines(text)
        assert any(
            excerpt_of(wanted, significant_lines(path.read_text())) for path in SHIPPED[language]
        ), f"{where}: not an excerpt (gaps marked `...`) of any of {SHIPPED[language]}"


def test_an_excerpt_leaves_out_lines_only_where_it_says_so() -> None:
    shipped = ["a {", "b", "c", "d", "}"]
    assert excerpt_of(["a {", "b", "...", "d", "}"], shipped)
    assert not excerpt_of(["a {", "b", "d", "}"], shipped)
    assert not excerpt_of(["d", "...", "b"], shipped)
