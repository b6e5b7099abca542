"""`make demo`: the demo backend, authsvc (dummy secret) and nginx with the example site.

Everything listens on 127.0.0.1 and stops on Ctrl-C. No root needed (nginx runs from a
private prefix in a temporary directory).
"""

from __future__ import annotations

import argparse
import base64
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from authsvc.config import PUBLIC_DUMMY_SECRET_B64
from authsvc.tools.devtoken import TEST_IPK, mint
from demo import nginx
from demo.processes import authsvc_env, authsvc_serve, spawn, stop, wait_until_answering

REPO_ROOT = Path(__file__).resolve().parent.parent
TOKEN_LIFETIME_SECONDS = 3600
AUTHORIZATION = "Bearer demo-user-session"


def demo_token(binding: str | None, ipk: str | None = None) -> str:
    secret = base64.b64decode(PUBLIC_DUMMY_SECRET_B64)
    return mint(
        secret, lifetime_seconds=TOKEN_LIFETIME_SECONDS, binding=binding, did="demo", ipk=ipk
    )


def curl(url: str, headers: dict[str, str]) -> str:
    flags = " ".join(f"-H {shlex.quote(f'{name}: {value}')}" for name, value in headers.items())
    return f"curl -i {flags} {url}"


def signed_curl(url: str, headers: dict[str, str]) -> str:
    """`authsvc sign` prints the curl command; run at once, as a signature lives 15 s."""
    flags = " ".join(f"-H {shlex.quote(f'{name}: {value}')}" for name, value in headers.items())
    return f'eval "$(.venv/bin/authsvc sign {url} {flags})"'


def banner(ports: nginx.Ports) -> str:
    site = f"http://127.0.0.1:{ports.nginx}"
    bound = demo_token(AUTHORIZATION)
    installed = demo_token(AUTHORIZATION, ipk=TEST_IPK)
    signed = signed_curl(
        f"{site}/signed/hello", {"Approov-Token": installed, "Authorization": AUTHORIZATION}
    )
    return f"""
authsvc demo is running (Ctrl-C stops it)
  nginx    {site}  (nginx/example.conf)
  authsvc  http://127.0.0.1:{ports.authsvc}  (dummy secret; a JSON line per decision below)
  backend  http://127.0.0.1:{ports.backend}  (echoes what reached it)

Allowed: a valid token bound to its Authorization header
  {curl(f"{site}/api/hello", {"Approov-Token": bound, "Authorization": AUTHORIZATION})}

Denied (401): the same token with another Authorization value
  {curl(f"{site}/api/hello", {"Approov-Token": bound, "Authorization": "Bearer someone-else"})}

Token only, for a login location (no Authorization yet)
  {curl(f"{site}/login", {"Approov-Token": demo_token(None)})}

Signed: an Approov message signature (test installation key) over the request, route /signed/
  {signed}

Open: curl -i {site}/public/
"""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    defaults = nginx.Ports()
    parser.add_argument("--port", type=int, default=defaults.nginx, help="nginx's port")
    parser.add_argument("--authsvc-port", type=int, default=defaults.authsvc)
    parser.add_argument("--backend-port", type=int, default=defaults.backend)
    args = parser.parse_args(argv)
    ports = nginx.Ports(args.port, args.authsvc_port, args.backend_port)
    if nginx.find_nginx() is None:
        print(f"demo: {nginx.INSTALL_HINT}", file=sys.stderr)
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="authsvc-demo-"))
    env = authsvc_env({"PYTHONPATH": str(REPO_ROOT)})  # the dummy secret; demo/ from here
    nginx.render(workdir, ports)
    # (process, how to stop it); gunicorn's SIGQUIT is its immediate shutdown.
    running: list[tuple[subprocess.Popen[bytes], signal.Signals]] = []

    def start(
        command: list[str],
        health_url: str,
        log_name: str | None,
        how: signal.Signals = signal.SIGTERM,
    ) -> None:
        with (workdir / (log_name or "unused.log")).open("ab") as log:
            process = spawn(command, log if log_name else None, env)
        running.append((process, how))
        wait_until_answering(health_url, process)

    failed = True
    signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly on `kill` as on Ctrl-C
    try:
        start(
            [sys.executable, "-m", "demo.backend", "--port", str(ports.backend)],
            f"http://127.0.0.1:{ports.backend}/__stats",
            "backend.log",
        )
        start(
            authsvc_serve(f"127.0.0.1:{ports.authsvc}", 2),
            f"http://127.0.0.1:{ports.authsvc}/readyz",
            None,
            signal.SIGQUIT,
        )
        start(
            nginx.command(workdir, "-g", "daemon off;"),
            f"http://127.0.0.1:{ports.nginx}/healthz",
            "nginx.log",
        )
        print(banner(ports), flush=True)
        while all(process.poll() is None for process, _ in running):
            time.sleep(0.5)
        print(f"demo: a process stopped; logs are in {workdir}", file=sys.stderr)
    except KeyboardInterrupt:
        failed = False
    except (RuntimeError, TimeoutError) as error:
        print(f"demo: {error} (a port in use? see --help); logs are in {workdir}", file=sys.stderr)
    finally:
        for process, how in reversed(running):
            stop(process, how)
        if not failed:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
