"""`make bench`: authsvc beside verifying in nginx (njs) and in Python, through one nginx worker,
with the floors: services that verify nothing and answer 204 to every check.

Every row is a server of the same nginx (1 worker) answering a small static file; wrk is the
load generator, on loopback. Each row first proves it allows a valid token and denies an
invalid one. Prints a table with each row's service CPU per check (the process that answers
the check: nginx itself for the rows without a subrequest service), the ratios the performance
issue asks for, and the RSS of the authsvc workers.
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from authsvc.config import DEFAULT_TOKEN_HEADER, PUBLIC_DUMMY_SECRET_B64
from authsvc.tools.devtoken import TEST_IPK, mint, sign_request
from demo import nginx
from demo.gateways import ENVOY, ENVOY_GRPC, HAPROXY, Gateway
from demo.processes import (
    authsvc_env,
    authsvc_serve,
    children,
    cpu_seconds,
    free_port,
    process_tree,
    rss_mb,
    spawn,
    stop,
    wait_until_ready,
)

BENCH = Path(__file__).resolve().parent
BINDING = "Bearer bench-user"
# A file, not "/": the index module's internal redirect would run auth_request a second time.
PATH = "/index.html"
SECRET = base64.b64decode(PUBLIC_DUMMY_SECRET_B64)
INSTALL = "apt-get install -y nginx-light libnginx-mod-http-js wrk"

SERVERS = """
    js_path "{njs_dir}";
    js_import approov from approov.js;
    js_set $approov_njs_allowed approov.allowed;
    open_file_cache max=64;
    upstream naive_python {{
        server 127.0.0.1:{naive};
    }}
    server {{  # nginx-no-auth
        listen 127.0.0.1:{p0};
        access_log off;
        root {www};
    }}
    server {{  # auth-floor
        listen 127.0.0.1:{p1};
        access_log off;
        root {www};
        location / {{
            auth_request /_floor;
        }}
        location = /_floor {{
            internal;
            return 204;
        }}
    }}
    server {{  # njs-verify
        listen 127.0.0.1:{p2};
        access_log off;
        root {www};
        location / {{
            if ($approov_njs_allowed != "1") {{
                return 401;
            }}
        }}
    }}
    server {{  # naive-python
        listen 127.0.0.1:{p3};
        access_log off;
        root {www};
        location / {{
            auth_request /_naive;
        }}
        location = /_naive {{
            internal;
            proxy_pass http://naive_python/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
    }}
    server {{  # authsvc, with the shipped snippet as shipped
        listen 127.0.0.1:{p4};
        access_log off;
        root {www};
        include snippets/approov-nocache.conf;
    }}
    server {{  # authsvc, with the snippet's optional cache of allow answers turned on
        listen 127.0.0.1:{p5};
        access_log off;
        root {www};
        include snippets/approov.conf;
    }}
    upstream authsvc_unix {{
        server unix:{socket};
        keepalive 32;
        keepalive_timeout 60s;
    }}
    server {{  # authsvc on a unix socket, the snippet as shipped otherwise
        listen 127.0.0.1:{p6};
        access_log off;
        root {www};
        include snippets/approov-unix.conf;
    }}
{floor_servers}
    server {{  # authsvc, the snippet as shipped, message signing required
        listen 127.0.0.1:{p8};
        access_log off;
        root {www};
        include snippets/approov-nocache.conf;
        location / {{
            auth_request /_approov/auth-signing-required;
        }}
    }}
"""


# The floors: what answers the subrequest, and the port (index into `ports`) of its row.
FLOORS = {
    "floor_nginx": ("a second nginx (1 worker) answers `return 204`", 9),
    "floor_protocol": ("uvloop + httptools, one asyncio.Protocol (bench/floors.py)", 10),
    "floor_asgi": ("a bare ASGI app on gunicorn with uvicorn's worker", 11),
}


def floor_servers(service_ports: dict[str, int], ports: list[int], www: Path) -> str:
    """A server per floor, behind the same snippet as authsvc."""
    return "".join(
        f"""
    upstream {name} {{
        server 127.0.0.1:{service_ports[name]};
        keepalive 32;
    }}
    server {{  # floor: {what}
        listen 127.0.0.1:{ports[port_index]};
        access_log off;
        root {www};
        location / {{
            auth_request /_floor;
        }}
        location = /_floor {{
            include snippets/approov-subrequest-nocache.conf;
            proxy_pass http://{name}/auth;
        }}
    }}"""
        for name, (what, port_index) in FLOORS.items()
    )


# The second nginx of the floor row: nothing but `return 204`.
FLOOR_NGINX_CONF = """
worker_processes 1;
pid {prefix}/floor-nginx.pid;
error_log {prefix}/floor-nginx.error.log;
events {{}}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 1000000;
        location / {{
            return 204;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Row:
    name: str
    port_index: int
    tokens: str  # "one", "rotate", "rotate-100k", "invalid" or "signed"
    expect: int  # the status every request should get
    service: str  # whose CPU answers the check (a key of the services started)
    proven: bool = True  # verifies tokens: its allow and deny are checked first


ROWS = (
    Row("nginx-no-auth", 0, "one", 200, "nginx", proven=False),
    Row("auth-floor", 1, "one", 200, "nginx", proven=False),
    Row("floor-nginx-204", 9, "one", 200, "floor-nginx", proven=False),
    Row("floor-python-protocol", 10, "one", 200, "floor-protocol", proven=False),
    Row("floor-asgi-uvicorn", 11, "one", 200, "floor-asgi", proven=False),
    Row("njs-verify", 2, "one", 200, "nginx"),
    Row("naive-python", 3, "one", 200, "naive"),
    Row("authsvc-miss", 4, "rotate", 200, "authsvc"),
    Row("authsvc-hit", 4, "one", 200, "authsvc"),
    Row("authsvc-deny", 4, "invalid", 401, "authsvc"),
    Row("authsvc-miss-100k", 4, "rotate-100k", 200, "authsvc"),
    Row("authsvc-hit-nginx-cache", 5, "one", 200, "authsvc"),
    Row("authsvc-hit-unix-socket", 6, "one", 200, "authsvc-unix"),
    # The token (cached) and an Approov message signature (verified on every request).
    Row("authsvc-hit-signed", 8, "signed", 200, "authsvc"),
    # The other front doors' shipped files -> the static server: envoy/envoy.yaml and
    # envoy/envoy-grpc.yaml (1 worker thread, as nginx has 1 worker), haproxy/haproxy.cfg
    # (HAProxy's default threads: one per CPU).
    Row("envoy-authsvc-miss", 7, "rotate", 200, "authsvc"),
    Row("envoy-authsvc-hit", 7, "one", 200, "authsvc"),
    Row("envoy-grpc-authsvc-miss", 12, "rotate", 200, "authsvc-grpc"),
    Row("envoy-grpc-authsvc-hit", 12, "one", 200, "authsvc-grpc"),
    Row("haproxy-authsvc-miss", 13, "rotate", 200, "authsvc"),
    Row("haproxy-authsvc-hit", 13, "one", 200, "authsvc"),
)
# The port index of each front door but nginx, and its rows.
FRONT_DOORS: dict[int, Gateway] = {7: ENVOY, 12: ENVOY_GRPC, 13: HAPROXY}
FRONT_DOOR_ROWS = {row.name for row in ROWS if row.port_index in FRONT_DOORS}


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def app_headers(token: str) -> dict[str, str]:
    return {"Approov-Token": token, "Authorization": BINDING}


def signed_headers(port: int, token: str, lifetime_seconds: int) -> dict[str, str]:
    """A GET of PATH signed with the test installation key, valid for `lifetime_seconds`."""
    headers = app_headers(token)
    url = f"http://127.0.0.1:{port}{PATH}"
    added = sign_request(
        "GET",
        url,
        list(headers.items()),
        token_header=DEFAULT_TOKEN_HEADER,
        lifetime_seconds=lifetime_seconds,
    )
    return {**headers, **dict(added)}


def status(port: int, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            code: int = response.status
            return code
    except urllib.error.HTTPError as error:
        return error.code


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    """wrk's latency text ("850.00us", "1.20ms", "1.01s", "1.00m") in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(port: int, seconds: int, connections: int, extra: list[str], expect: int) -> Result:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *extra]
    output = subprocess.run(
        [*command[:5], f"http://127.0.0.1:{port}{PATH}", *command[5:]],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    if "Requests/sec" not in output:
        raise RuntimeError(f"wrk gave no result:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)$", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)$", output, re.M).group(1))  # type: ignore[union-attr]
    socket_errors = re.search(r"Socket errors: (.*)", output)
    errors = sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1))) if socket_errors else 0
    unexpected = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    if expect == 200 and unexpected:
        errors += int(unexpected.group(1))
    if expect == 401:
        errors += total - (int(unexpected.group(1)) if unexpected else 0)
    return Result(rps, p50, p99, errors, total)


def write_snippet_variants(snippets: Path) -> None:
    """Beside the cache-enabled render: the server snippet as shipped (no auth cache), and the
    same pointed at the unix-socket authsvc."""
    (snippets / "approov-subrequest-nocache.conf").write_text(
        (nginx.SHIPPED / "snippets" / "approov-subrequest.conf").read_text()
    )
    as_shipped = (
        (snippets / "approov.conf")
        .read_text()
        .replace("snippets/approov-subrequest.conf", "snippets/approov-subrequest-nocache.conf")
    )
    (snippets / "approov-nocache.conf").write_text(as_shipped)
    unix = as_shipped.replace("proxy_pass http://authsvc;", "proxy_pass http://authsvc_unix;")
    if unix == as_shipped:
        raise RuntimeError("the unix-socket row would check on TCP: approov.conf changed")
    (snippets / "approov-unix.conf").write_text(unix)


@dataclass(frozen=True)
class Tokens:
    one: str
    invalid: str
    installed: str  # carries the test installation key, for signed requests
    rotate: Path
    rotate_100k: Path


def row_requests(
    row: Row, port: int, tokens: Tokens, seconds: int
) -> tuple[tuple[int, int], list[str]]:
    """What proves the row allows and denies (two statuses), and wrk's arguments for its run."""
    if row.tokens == "signed":
        # Signed now, for the checks and the run (the max age, 60 s, bounds --seconds).
        allowed = signed_headers(port, tokens.installed, seconds + 30)
        checks = (status(port, allowed), status(port, app_headers(tokens.installed)))
        flags = [("-H", f"{name}: {value}") for name, value in allowed.items()]
        return checks, [word for flag in flags for word in flag]
    checks = (status(port, app_headers(tokens.one)), status(port, app_headers(tokens.invalid)))
    if row.tokens in ("rotate", "rotate-100k"):
        file = tokens.rotate if row.tokens == "rotate" else tokens.rotate_100k
        return checks, ["-s", str(BENCH / "lua" / "rotate.lua"), "--", str(file)]
    token = tokens.invalid if row.tokens == "invalid" else tokens.one
    return checks, ["-H", f"Approov-Token: {token}", "-H", f"Authorization: {BINDING}"]


def worker_rss_mb(master: int) -> list[float]:
    return [rss_mb(worker) for worker in children(master)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8, help="per row (default: 8)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--authsvc-workers", type=int, default=2)
    args = parser.parse_args()
    missing = [tool for tool in ("wrk",) if shutil.which(tool) is None]
    if nginx.find_nginx() is None or not nginx.NJS_MODULE.exists() or missing:
        print(f"bench: needs nginx, its njs module and wrk: {INSTALL}", file=sys.stderr)
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="authsvc-bench-"))
    (workdir / "www").mkdir()
    (workdir / "www" / "index.html").write_text("ok\n")
    now = time.time()
    one = mint(SECRET, lifetime_seconds=3600, binding=BINDING, did="bench")
    installed = mint(SECRET, lifetime_seconds=3600, binding=BINDING, did="bench", ipk=TEST_IPK)
    rotate = workdir / "tokens.txt"
    rotate_100k = workdir / "tokens-100k.txt"
    print("minting 100,000 tokens ...", flush=True)
    lines = [
        mint(SECRET, lifetime_seconds=3600 + i % 600, binding=BINDING, did=f"d{i}", now=now)
        for i in range(100_000)
    ]
    rotate.write_text("\n".join(lines[:20_000]) + "\n")
    rotate_100k.write_text("\n".join(lines) + "\n")
    invalid = one[:-4] + ("AAAA" if not one.endswith("AAAA") else "BBBB")
    tokens = Tokens(one, invalid, installed, rotate, rotate_100k)

    env = authsvc_env()
    authsvc_port, naive_port = free_port(), free_port()
    floor_ports = {name: free_port() for name in FLOORS}
    ports = [free_port() for _ in range(14)]
    grpc_port = free_port()
    socket_path = workdir / "authsvc.sock"
    running: list[subprocess.Popen[bytes]] = []
    try:
        with (workdir / "authsvc.log").open("ab") as log:
            authsvc = spawn(
                authsvc_serve(f"127.0.0.1:{authsvc_port}", args.authsvc_workers), log, env
            )
            running.append(authsvc)
            # The gRPC door's own: the rows above measure the shipped default (HTTP only).
            authsvc_grpc = spawn(
                authsvc_serve(
                    f"127.0.0.1:{free_port()}",
                    args.authsvc_workers,
                    "--grpc-bind",
                    f"127.0.0.1:{grpc_port}",
                ),
                log,
                env,
            )
            running.append(authsvc_grpc)
            authsvc_unix = spawn(
                authsvc_serve(f"unix:{socket_path}", args.authsvc_workers), log, env
            )
            running.append(authsvc_unix)
            naive = spawn(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-k",
                    "sync",
                    "-w",
                    "2",
                    "-b",
                    f"127.0.0.1:{naive_port}",
                    "--chdir",
                    str(BENCH),
                    "naive_app:app",
                ],
                log,
                env,
            )
            running.append(naive)
            floor_protocol = spawn(
                [
                    sys.executable,
                    str(BENCH / "floors.py"),
                    "protocol",
                    f"127.0.0.1:{floor_ports['floor_protocol']}",
                    str(args.authsvc_workers),
                ],
                log,
                env,
            )
            running.append(floor_protocol)
            floor_asgi = spawn(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-k",
                    "uvicorn_worker.UvicornWorker",
                    "-w",
                    str(args.authsvc_workers),
                    "-b",
                    f"127.0.0.1:{floor_ports['floor_asgi']}",
                    "--chdir",
                    str(BENCH),
                    "floors:asgi_app",
                ],
                log,
                env,
            )
            running.append(floor_asgi)
            floor_prefix = workdir / "floor-nginx"
            (floor_prefix / "conf").mkdir(parents=True)
            (floor_prefix / "logs").mkdir()
            (floor_prefix / "conf" / "nginx.conf").write_text(
                FLOOR_NGINX_CONF.format(prefix=floor_prefix, port=floor_ports["floor_nginx"])
            )
            floor_nginx = spawn(nginx.command(floor_prefix, "-g", "daemon off;"), log)
            running.append(floor_nginx)
        wait_until_ready(f"http://127.0.0.1:{authsvc_port}", authsvc)
        servers = SERVERS.format(
            njs_dir=BENCH / "njs",
            naive=naive_port,
            www=workdir / "www",
            socket=socket_path,
            floor_servers=floor_servers(floor_ports, ports, workdir / "www"),
            **{f"p{i}": port for i, port in enumerate(ports)},
        )
        nginx.render(
            workdir,
            nginx.Ports(free_port(), authsvc_port, free_port()),
            servers,
            extra_main=f"load_module {nginx.NJS_MODULE};",
            auth_cache=True,
        )
        write_snippet_variants(workdir / "conf" / "snippets")
        with (workdir / "nginx.log").open("ab") as log:
            front = spawn(nginx.command(workdir, "-g", "daemon off;"), log)
            running.append(front)
        rows: tuple[Row, ...] = ROWS
        for port_index, gateway in FRONT_DOORS.items():
            if gateway.find() is None:
                print(f"bench: no {gateway.name} rows ({gateway.install_hint})", file=sys.stderr)
                rows = tuple(row for row in rows if row.port_index != port_index)
                continue
            gateway_ports = nginx.Ports(ports[port_index], authsvc_port, ports[0], grpc_port)
            config = gateway.render(workdir / gateway.name, gateway_ports)
            with (workdir / f"{gateway.name}.log").open("ab") as log:
                running.append(spawn(gateway.command(config), log))
        time.sleep(1)
        services = {
            "nginx": front.pid,
            "authsvc": authsvc.pid,
            "authsvc-grpc": authsvc_grpc.pid,
            "authsvc-unix": authsvc_unix.pid,
            "naive": naive.pid,
            "floor-nginx": floor_nginx.pid,
            "floor-protocol": floor_protocol.pid,
            "floor-asgi": floor_asgi.pid,
        }

        print(
            f"{'row':<26}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'CPU µs':>8}  checks"
        )
        results: dict[str, Result] = {}
        rss_before = worker_rss_mb(authsvc.pid)
        for row in rows:
            port = ports[row.port_index]
            checks, extra = row_requests(row, port, tokens, args.seconds)
            service = process_tree(services[row.service])
            cpu_before = cpu_seconds(service)
            result = wrk(port, args.seconds, args.connections, extra, row.expect)
            cpu_us = (cpu_seconds(service) - cpu_before) / max(result.requests, 1) * 1e6
            results[row.name] = result
            verdict = "allow+deny ok" if checks == (200, 401) else f"CHECK FAILED {checks}"
            if not row.proven:
                verdict = "allows everything (reference)"
            print(
                f"{row.name:<26}{result.rps:>10.0f}{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}"
                f"{result.errors:>8}{cpu_us:>8.1f}  {verdict} ({row.service})",
                flush=True,
            )
        rss_after = worker_rss_mb(authsvc.pid)

        # p99 at half authsvc-hit's maximum rate, and the Python floor's at the same rate (wrk
        # paces each connection).
        half_rate = results["authsvc-hit"].rps / 2
        delay_ms = max(1, int(args.connections / half_rate * 1000))
        paced = {
            name: wrk(
                ports[port_index],
                args.seconds,
                args.connections,
                ["-s", str(BENCH / "lua" / "paced.lua"), "--", str(delay_ms), one],
                200,
            )
            for name, port_index in (("floor-python-protocol", 10), ("authsvc-hit", 4))
        }
        print_ratios(results, paced, rss_before, rss_after)
    finally:
        for process in reversed(running):
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def print_ratios(
    results: dict[str, Result],
    paced: dict[str, Result],
    rss_before: list[float],
    rss_after: list[float],
) -> None:
    rps = {name: result.rps for name, result in results.items()}

    def ratio(label: str, a: str, b: str, target: float) -> None:
        value = rps[a] / rps[b]
        mark = "MET" if value >= target else "MISSED"
        print(f"  {label:<40}{value:>6.2f}x  (target >= {target}x: {mark})")

    print("\nratios (targets: the performance issue, round 4)")
    ratio("authsvc-miss / njs-verify", "authsvc-miss", "njs-verify", 0.5)
    ratio("authsvc-deny / njs-verify", "authsvc-deny", "njs-verify", 0.65)
    ratio("authsvc-hit / njs-verify", "authsvc-hit", "njs-verify", 0.8)
    ratio("authsvc-hit / floor-python-protocol", "authsvc-hit", "floor-python-protocol", 0.7)
    deny_vs_miss = rps["authsvc-deny"] / rps["authsvc-miss"]
    print(f"  {'authsvc-deny / authsvc-miss':<40}{deny_vs_miss:>6.2f}x  (for the record)")
    for floor in ("floor-nginx-204", "floor-python-protocol", "floor-asgi-uvicorn"):
        label = f"{floor} / njs-verify"
        print(f"  {label:<40}{rps[floor] / rps['njs-verify']:>6.2f}x  (the limit, for the record)")
    ratio("authsvc-hit-nginx-cache / njs-verify", "authsvc-hit-nginx-cache", "njs-verify", 1.5)
    miss_vs_naive = rps["authsvc-miss"] / rps["naive-python"]
    print(f"  {'authsvc-miss / naive-python':<40}{miss_vs_naive:>6.2f}x  (for the record)")
    for row in sorted(FRONT_DOOR_ROWS & rps.keys()):
        behind_nginx = "authsvc-" + row.split("-authsvc-", 1)[1]
        label = f"{row} / {behind_nginx} (nginx)"
        print(f"  {label:<40}{rps[row] / rps[behind_nginx]:>6.2f}x  (for the record)")
    signed_vs_hit = rps["authsvc-hit-signed"] / rps["authsvc-hit"]
    print(f"  {'authsvc-hit-signed / authsvc-hit':<40}{signed_vs_hit:>6.2f}x  (for the record)")
    unix_vs_tcp = rps["authsvc-hit-unix-socket"] / rps["authsvc-hit"]
    print(f"  {'authsvc-hit unix socket / TCP':<40}{unix_vs_tcp:>6.2f}x  (for the record)")
    floor_paced, hit = paced["floor-python-protocol"], paced["authsvc-hit"]
    added = hit.p99_ms - floor_paced.p99_ms
    print(
        f"  {'p99 at half the hit rate, over the floor':<40}{added:>6.2f} ms (target <= 1 ms: "
        f"{'MET' if added <= 1 else 'MISSED'}; p50/p99: floor-python-protocol "
        f"{floor_paced.p50_ms:.2f}/{floor_paced.p99_ms:.2f} ms at {floor_paced.rps:.0f} req/s, "
        f"authsvc-hit {hit.p50_ms:.2f}/{hit.p99_ms:.2f} ms at {hit.rps:.0f} req/s)"
    )
    print(
        f"  {'authsvc worker RSS (MB)':<40}before {', '.join(f'{m:.1f}' for m in rss_before)}"
        f"; after 100k distinct tokens {', '.join(f'{m:.1f}' for m in rss_after)}"
        f" (target <= 60: {'MET' if max(rss_after) <= 60 else 'MISSED'})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
