"""Run the shipped nginx files (nginx/) in a private prefix, as any user, on chosen ports."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent.parent / "nginx"
SHIPPED_FILES = (
    "conf.d/authsvc.conf",
    "snippets/approov.conf",
    "snippets/approov-subrequest.conf",
    "example.conf",
)
NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")
INSTALL_HINT = "nginx is not installed: `sudo apt-get install nginx-light` (Debian/Ubuntu)"

MAIN_CONF = """\
{user}
{extra_main}
worker_processes {workers};
worker_rlimit_nofile 4096;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log notice;
events {{
    worker_connections 1024;
}}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    access_log {prefix}/logs/access.log;
    server_tokens off;
    include conf.d/authsvc.conf;
    include example.conf;
{extra}
}}
"""


def find_nginx() -> str | None:
    for candidate in NGINX_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


@dataclass(frozen=True)
class Ports:
    nginx: int = 8080
    authsvc: int = 8002
    backend: int = 8081


def with_auth_cache(text: str) -> str:
    """A shipped file with its optional auth-cache lines turned on."""
    return re.sub(r"^#(proxy_cache)", r"\1", text, flags=re.MULTILINE)


def render(
    prefix: Path,
    ports: Ports,
    extra_http: str = "",
    workers: int = 1,
    extra_main: str = "",
    auth_cache: bool = False,
) -> Path:
    """Copy the shipped files into `prefix`, with only their addresses and paths changed
    (and, with `auth_cache`, the optional cache of allow answers turned on)."""
    replacements = {
        "127.0.0.1:8080": f"127.0.0.1:{ports.nginx}",
        "127.0.0.1:8002": f"127.0.0.1:{ports.authsvc}",
        "127.0.0.1:8081": f"127.0.0.1:{ports.backend}",
        "/var/log/nginx/": f"{prefix}/logs/",
        "/var/cache/nginx/": f"{prefix}/cache/",
    }
    conf = prefix / "conf"
    for folder in (
        conf / "conf.d",
        conf / "snippets",
        prefix / "logs",
        prefix / "tmp",
        prefix / "cache",
    ):
        folder.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED_FILES:
        text = (SHIPPED / name).read_text()
        for old, new in replacements.items():
            text = text.replace(old, new)
        (conf / name).write_text(with_auth_cache(text) if auth_cache else text)
    # As root, workers would run as nobody, who cannot enter a private temp directory.
    user = "user root;" if os.geteuid() == 0 else ""
    main = conf / "nginx.conf"
    main.write_text(
        MAIN_CONF.format(
            user=user, workers=workers, prefix=prefix, extra=extra_http, extra_main=extra_main
        )
    )
    return main


def command(prefix: Path, *extra: str) -> list[str]:
    nginx = find_nginx()
    if nginx is None:
        raise FileNotFoundError(INSTALL_HINT)
    return [nginx, "-p", str(prefix), "-c", str(prefix / "conf" / "nginx.conf"), *extra]
