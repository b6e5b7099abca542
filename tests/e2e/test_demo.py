"""`make demo` (python -m demo): starts, prints curls that do what they say, stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from demo.processes import free_port, spawn, stop
from tests.e2e.servers import REPO_ROOT
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("nginx_available")]


def run_curl(line: str) -> int:
    """Perform a printed `curl -i -H ... URL` with urllib, return the status."""
    words = shlex.split(line)
    url = words[-1]
    headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            status: int = r.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def test_demo_prints_working_curls_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    log_path = tmp_path / "demo.log"
    with log_path.open("ab") as log:
        demo = spawn(
            [
                sys.executable,
                "-m",
                "demo",
                "--port",
                str(ports[0]),
                "--authsvc-port",
                str(ports[1]),
                "--backend-port",
                str(ports[2]),
            ],
            log,
            {**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            REPO_ROOT,
        )
    try:

        def started() -> bool:
            assert demo.poll() is None, log_path.read_text()
            return "Open: curl" in log_path.read_text()

        wait_until(started, 30, "the demo's curls")
        text = log_path.read_text()
        sections = re.findall(r"^(Allowed|Denied|Token only)[^\n]*\n  (curl [^\n]+)$", text, re.M)
        statuses = {name: run_curl(line) for name, line in sections}
        signing = re.search(
            r'^Signed[^\n]*\n  eval "\$\((\.venv/bin/authsvc sign [^\n]+)\)"$', text, re.M
        )
        assert signing is not None, text
        command = signing[1].replace(".venv/bin/authsvc", f"{sys.executable} -m authsvc", 1)
        signed = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, check=True, env=os.environ
        ).stdout
        statuses["Signed"] = run_curl(signed.strip())
        assert statuses == {"Allowed": 200, "Denied": 401, "Token only": 200, "Signed": 200}
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=20) == 0
        for port in ports:
            with pytest.raises(urllib.error.URLError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
    finally:
        stop(demo)
