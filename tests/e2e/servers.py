"""The real processes the end-to-end tests talk to, all on 127.0.0.1, stopped by pid."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo import nginx
from demo.gateways import Gateway
from demo.processes import (
    WORKER_READY,
    authsvc_env,
    authsvc_serve,
    free_port,
    spawn,
    stop,
    wait_until_answering,
    wait_until_ready,
)
from tests.support.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


ANSWER_WITHIN_SECONDS = 2.0


def exchange(port: int, raw: bytes, timeout: float = ANSWER_WITHIN_SECONDS) -> int | None:
    """Send raw bytes, return the status of the first response (None: connection closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(raw)
        received = b""
        while b"\r\n" not in received:
            chunk = conn.recv(4096)  # socket.timeout here means the server hung
            if not chunk:
                return None
            received += chunk
    return int(received.split(b" ", 2)[1])


class Process:
    """One command run in the background, its output in a log file."""

    def __init__(self, name: str, log_dir: Path) -> None:
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    stop_signal = signal.SIGTERM

    def spawn(self, command: list[str], env: Mapping[str, str] | None = None) -> None:
        with self.log_path.open("ab") as log:
            self.process = spawn(command, log, env, self.log_path.parent)

    def launch(
        self, command: list[str], env: Mapping[str, str] | None, ready: Callable[[], None]
    ) -> None:
        """Spawn `command`, then wait with `ready`; a process that never got ready is stopped."""
        self.spawn(command, env)
        try:
            ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, self.stop_signal)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Authsvc(Process):
    """`authsvc serve` on a loopback port with the dummy secret (unless `env` names a key)."""

    # gunicorn's immediate shutdown: a graceful one waits for nginx's idle keep-alive
    # connections for up to graceful_timeout.
    stop_signal = signal.SIGQUIT

    def __init__(
        self,
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        workers: int = 2,
        port: int | None = None,
        command: tuple[str, ...] = (sys.executable, "-m", "authsvc"),
        extra_args: tuple[str, ...] = (),
        keys_loaded: bool = True,
    ) -> None:
        self.port = port or free_port()
        super().__init__(f"authsvc-{self.port}", log_dir)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = authsvc_env(env)
        self._workers = workers
        self._keys_loaded = keys_loaded
        self._argv = authsvc_serve(f"127.0.0.1:{self.port}", workers, *extra_args, command=command)

    def start(self) -> Authsvc:
        booted_before = self.log_text().count(WORKER_READY)

        def ready() -> None:
            assert self.process is not None
            wait_until_ready(
                self.url,
                self.process,
                self.log_path,
                self._workers,
                booted_before,
                keys_loaded=self._keys_loaded,
            )

        self.launch(self._argv, self.env, ready)
        return self

    def stop(self) -> None:
        """Stop it, and fail if it hit an internal error: a crash must not pass for a deny."""
        super().stop()
        crashes = [line for line in self.log_text().splitlines() if is_internal_error(line)]
        assert not crashes, f"authsvc on port {self.port} hit internal errors: {crashes[:3]}"


_AUTHSVC_ERROR = re.compile(r"\[(?:ERROR|CRITICAL)\] authsvc\.")


def is_internal_error(line: str) -> bool:
    """A denied internal error, or an error any authsvc module logged (AUTHSVC_LOG_FORMAT)."""
    return '"reason": "internal_error"' in line or bool(_AUTHSVC_ERROR.search(line))


# Valkey and Redis speak one protocol; whichever the machine has (Debian: redis-server).
REDIS_SERVERS = ("valkey-server", "redis-server")
REDIS_INSTALL_HINT = "redis-server is not installed: `sudo apt-get install redis-server`"


def find_redis_server() -> str | None:
    return next((path for name in REDIS_SERVERS if (path := shutil.which(name))), None)


class RedisServer(Process):
    """A Redis (or Valkey) server on a loopback port, nothing saved to disk; stopped and
    started again on the same port for the outage tests."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        super().__init__(f"redis-{self.port}", log_dir)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = find_redis_server()
        assert binary is not None, REDIS_INSTALL_HINT
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.log_path.parent)]
        self.launch(command, None, self._wait_until_it_answers)
        return self

    def _wait_until_it_answers(self) -> None:
        wait_until(self.answers, what="redis-server to answer")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class Backend(Process):
    """The demo backend, which counts the requests that reach it."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        super().__init__(f"backend-{self.port}", log_dir)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Backend:
        # demo/ is not installed: run it from the checkout.
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        command = [sys.executable, "-m", "demo.backend", "--port", str(self.port)]
        self.launch(command, env, lambda: wait_until_answering(f"{self.url}/__stats", self.process))
        return self


class Nginx(Process):
    """nginx running the shipped files from a private prefix."""

    def __init__(
        self,
        prefix: Path,
        ports: nginx.Ports,
        extra_http: str = "",
        auth_cache: bool = False,
        extra_main: str = "",
    ) -> None:
        prefix.mkdir(parents=True, exist_ok=True)
        super().__init__("nginx", prefix)
        self.prefix = prefix
        self.ports = ports
        self.url = f"http://127.0.0.1:{ports.nginx}"
        nginx.render(prefix, ports, extra_http, auth_cache=auth_cache, extra_main=extra_main)

    def start(self) -> Nginx:
        command = nginx.command(self.prefix, "-g", "daemon off;")
        self.launch(
            command, None, lambda: wait_until_answering(f"{self.url}/healthz", self.process)
        )
        return self

    def access_log(self) -> str:
        return (self.prefix / "logs" / "approov-example.access.log").read_text()

    def error_log(self) -> str:
        return (self.prefix / "logs" / "error.log").read_text()


class GatewayProxy(Process):
    """Envoy or Caddy running its shipped file, with only the addresses changed."""

    def __init__(self, gateway: Gateway, directory: Path, ports: nginx.Ports) -> None:
        super().__init__(gateway.name, directory)
        self.gateway = gateway
        self.port = ports.nginx
        self.url = f"http://127.0.0.1:{ports.nginx}"
        self.config = gateway.render(directory / "conf", ports)

    def start(self) -> GatewayProxy:
        command = self.gateway.command(self.config)
        self.launch(
            command, None, lambda: wait_until_answering(f"{self.url}/healthz", self.process)
        )
        return self


INGRESS_AUTH_HOST = "authsvc.approov.svc.cluster.local"

# A server shaped like the one ingress-nginx generates for `auth-url` (+ `auth-method: GET`,
# `auth-response-headers: X-Approov-Did`, `auth-proxy-set-headers` with the routed host, as
# deploy/kubernetes/examples/ingress-nginx.yaml sets them): its own auth location, no snippet.
INGRESS_SITE = """
    server {{
        listen 127.0.0.1:{port};
        server_name _;
        location = /_external-auth-Lw-Prefix {{
            internal;
            proxy_pass_request_body     off;
            proxy_set_header            Content-Length          "";
            proxy_method                GET;
            proxy_set_header            X-Original-URI          $request_uri;
            proxy_set_header            X-Scheme                $scheme;
            proxy_set_header            Host                    {auth_host};
            proxy_set_header            X-Original-URL          $scheme://$http_host$request_uri;
            proxy_set_header            X-Original-Method       $request_method;
            proxy_set_header            X-Sent-From             "nginx-ingress-controller";
            proxy_set_header            X-Approov-Routed-Host   '$host';
            proxy_set_header            X-Real-IP               $remote_addr;
            proxy_set_header            X-Forwarded-For         $remote_addr;
            proxy_set_header            X-Auth-Request-Redirect $request_uri;
            proxy_buffering             off;
            proxy_http_version          1.1;
            proxy_pass_request_headers  on;
            client_max_body_size        1m;
            set $target http://127.0.0.1:{authsvc}/auth;
            proxy_pass $target;
        }}
        location / {{
            auth_request        /_external-auth-Lw-Prefix;
            auth_request_set    $authHeader0 $upstream_http_x_approov_did;
            proxy_set_header    X-Approov-Did $authHeader0;
            proxy_pass http://127.0.0.1:{backend};
        }}
        # auth-url with message signing, no auth-method: then ingress-nginx sends no
        # X-Original-URI of its own (a client's passes through) and blanks X-Forwarded-Proto.
        location = /_external-auth-signed {{
            internal;
            proxy_pass_request_body     off;
            proxy_set_header            Content-Length          "";
            proxy_set_header            X-Forwarded-Proto       "";
            proxy_set_header            Host                    {auth_host};
            proxy_set_header            X-Original-URL          $scheme://$http_host$request_uri;
            proxy_set_header            X-Original-Method       $request_method;
            proxy_set_header            X-Sent-From             "nginx-ingress-controller";
            proxy_set_header            X-Approov-Routed-Host   '$host';
            proxy_http_version          1.1;
            proxy_pass_request_headers  on;
            set $target http://127.0.0.1:{authsvc}/auth-binding-off-signing-required;
            proxy_pass $target;
        }}
        location /signed/ {{
            auth_request        /_external-auth-signed;
            proxy_pass http://127.0.0.1:{backend};
        }}
    }}
"""

# A second virtual host beside the example site, on its port: a request nginx routes here is
# checked with this server's own URL (tests/e2e/test_message_signing.py).
SECOND_VIRTUAL_HOST = """
    server {{
        listen 127.0.0.1:{port};
        server_name a.example;
        include snippets/approov.conf;
        location /signed/ {{
            auth_request /_approov/auth-signing-required;
            proxy_pass http://127.0.0.1:{backend};
        }}
    }}
"""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One keep-alive connection to nginx."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def send(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Reply:
        self.connection.request(method, path, body=body, headers=headers or {})
        response = self.connection.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())

    def close(self) -> None:
        self.connection.close()


def send(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    """One request on a fresh connection."""
    client = Client(port)
    try:
        return client.send(method, path, headers, body)
    finally:
        client.close()


def send_lines(
    port: int, method: str, path: str, lines: list[tuple[str, str]], body: bytes = b""
) -> Reply:
    """One request with exactly these header lines (repeated names kept), and `body`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path)
        for name, value in lines:
            connection.putheader(name, value)
        if body:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def backend_requests(backend: Backend) -> int:
    count: int = send(backend.port, "GET", "/__stats").json()["requests"]
    return count


class ProxiedStack:
    """A counting backend and authsvc behind a proxy whose clients connect to `port`."""

    def __init__(
        self, backend: Backend, authsvc: Authsvc, proxy: Nginx | GatewayProxy, port: int
    ) -> None:
        self.backend, self.authsvc, self.proxy, self.port = backend, authsvc, proxy, port
        try:
            for process in (backend, authsvc, proxy):
                process.start()
        except BaseException:
            self.stop()  # what started must not outlive a failed start
            raise

    def client(self, port: int | None = None) -> Client:
        return Client(port or self.port)

    def send(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        port: int | None = None,
    ) -> Reply:
        return send(port or self.port, method, path, headers, body)

    def backend_requests(self) -> int:
        return backend_requests(self.backend)

    def stop(self) -> None:
        for process in (self.proxy, self.authsvc, self.backend):
            process.stop()


class Stack(ProxiedStack):
    """backend + authsvc + nginx (example site and an ingress-shaped site)."""

    def __init__(self, root: Path, auth_cache: bool = False, **authsvc_options: Any) -> None:
        backend = Backend(root)
        authsvc = Authsvc(root, **authsvc_options)
        self.ingress_port = free_port()
        ports = nginx.Ports(free_port(), authsvc.port, backend.port)
        site = INGRESS_SITE.format(
            port=self.ingress_port,
            auth_host=INGRESS_AUTH_HOST,
            authsvc=authsvc.port,
            backend=backend.port,
        ) + SECOND_VIRTUAL_HOST.format(port=ports.nginx, backend=backend.port)
        self.nginx = Nginx(root / "nginx", ports, site, auth_cache)
        super().__init__(backend, authsvc, self.nginx, ports.nginx)


class GatewayStack(ProxiedStack):
    """backend + authsvc (shipped defaults, and its gRPC port for a proxy that speaks it) +
    Envoy or Caddy with its shipped file."""

    def __init__(self, gateway: Gateway, root: Path, **authsvc_options: Any) -> None:
        grpc_port = free_port()
        self.grpc_address = f"127.0.0.1:{grpc_port}" if gateway.speaks_grpc else None
        """Where authsvc answers gRPC ext_authz, for a proxy that speaks it."""
        if self.grpc_address is not None:
            authsvc_options["extra_args"] = (
                *authsvc_options.get("extra_args", ()),
                "--grpc-bind",
                self.grpc_address,
            )
        backend, authsvc = Backend(root), Authsvc(root, **authsvc_options)
        ports = nginx.Ports(free_port(), authsvc.port, backend.port, grpc_port)
        super().__init__(
            backend, authsvc, GatewayProxy(gateway, root / gateway.name, ports), ports.nginx
        )
