"""Debian's headless chromium for the pages the project renders: a screenshot, what the page
logged to the console, and the colours of the screenshot's pixels (no image library needed).

`python -m tests.support.browser PAGE PNG` writes PAGE's screenshot to PNG (`make report-example`).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

from tests.conftest import require

CHROMIUM_HINT = "chromium is not installed: `apt-get install chromium`"
# Headless, offline, no state: the flags this machine's closed network needs.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1100,1500",
)
# A chart swatch in the legend is 12 x 12: a drawn chart has many times that of its colours.
LEGEND_SWATCH_PIXELS = 144


def screenshot(page: Path, directory: Path, picture: Path | None = None) -> tuple[Path, str]:
    """chromium's screenshot of `page` (in `directory`, unless `picture` names the file), and
    what it logged (console messages among it)."""
    chromium = shutil.which("chromium")
    require(chromium is not None, CHROMIUM_HINT)
    assert chromium is not None
    picture = picture or directory / "page.png"
    result = subprocess.run(
        [
            chromium,
            *FLAGS,
            f"--user-data-dir={directory / 'profile'}",
            f"--screenshot={picture}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert picture.exists(), result.stderr[-2000:]
    return picture, result.stderr


def console_errors(log: str) -> list[str]:
    return [
        line
        for line in log.splitlines()
        if "CONSOLE" in line or "Uncaught" in line or "ERR_" in line
    ]


def colours(png: Path) -> Counter[tuple[int, int, int]]:
    """How many pixels of each RGB colour an 8-bit RGB or RGBA PNG has (no library needed)."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, [], b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, colour_type in (2, 6), interlace) == (8, True, 0)
    channels = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * channels
    previous, counted = bytearray(stride), Counter[tuple[int, int, int]]()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - up_left
                nearest = min(
                    (abs(estimate - left), left),
                    (abs(estimate - up), up),
                    (abs(estimate - up_left), up_left),
                    key=lambda pair: pair[0],
                )[1]
                line[i] = (line[i] + nearest) & 0xFF
        counted.update((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels))
        previous = line
    return counted


def rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


if __name__ == "__main__":
    import tempfile

    page, png = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    with tempfile.TemporaryDirectory() as profile:
        _, log = screenshot(page, Path(profile), png)
    errors = console_errors(log)
    if errors:
        sys.exit(f"{page}: console errors: {errors}")
