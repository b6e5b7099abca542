"""The production server: gunicorn with its native asyncio (ASGI) worker, tuned for auth_request."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gunicorn.app.base import BaseApplication

from authsvc.app import AsgiApp, create_app
from authsvc.config import ConfigError, Settings
from authsvc.environment import load_environment
from authsvc.keys import KeySource

log = logging.getLogger("gunicorn.error")

# A stopping worker answers with `Connection: close` meanwhile, so nginx moves to new workers.
DEFAULT_GRACEFUL_TIMEOUT = 30

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
    "graceful_timeout": DEFAULT_GRACEFUL_TIMEOUT,
    # gunicorn 27's control socket would be created in $HOME; authsvc has no use for it.
    "control_socket_disable": True,
}


class AuthServer(BaseApplication):  # type: ignore[misc]
    """gunicorn running `create_app`; settings and keys are loaded in the master, before forking.

    `kill -HUP <master>` reloads: settings and key files are read again, and only if they are
    all valid do the new workers use them; otherwise the errors are logged and the new workers
    keep the previous configuration.
    """

    def __init__(self, settings: Settings, keys: KeySource, options: Mapping[str, Any]) -> None:
        self._settings = settings
        self._keys = keys
        self._options = {**DEFAULT_OPTIONS, **options}
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def reload(self) -> None:
        try:
            settings = Settings.from_env(load_environment())
            keys = KeySource.from_settings(settings)
        except ConfigError as error:
            log.error("reload refused, keeping the running configuration: %s", error)
        else:
            self._settings, self._keys = settings, keys
            log.info("reloaded: keys %s", keys.current.describe())
        super().reload()

    def load(self) -> AsgiApp:
        # In each worker: the JWKS URL (if any) is refreshed by a thread of its own.
        self._keys.start_refreshing()
        return create_app(self._settings, keys=self._keys)


def serve(
    settings: Settings, keys: KeySource, *, bind: str, workers: int, graceful_timeout: int
) -> None:
    options = {"bind": [bind], "workers": workers, "graceful_timeout": graceful_timeout}
    AuthServer(settings, keys, options).run()
