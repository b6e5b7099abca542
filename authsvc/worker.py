"""The gunicorn worker: uvicorn's HTTP/1.1 server (httptools' C parser, uvloop) in a gunicorn
worker process, with gunicorn's signals kept meaningful.

gunicorn stays the process manager (workers, HUP reload, child_exit); uvicorn parses and writes
HTTP, which gunicorn's own asyncio worker did in pure Python at ~40% of a request.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any, ClassVar

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker


class AuthWorker(UvicornWorker):  # type: ignore[misc]
    """SIGTERM (and SIGINT to the worker): graceful — listeners closed, idle keep-alive
    connections closed, requests in flight answered with `Connection: close`. SIGQUIT (what
    gunicorn's master sends on its own SIGQUIT or SIGINT): stop at once."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "off",  # the app has no start-up or shut-down work of its own
        "server_header": False,
        "proxy_headers": False,  # authsvc reads no client address from headers
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Off unless --access-log: the decision line already logs every check.
        self.config.access_log = bool(self.cfg.accesslog)
        self._server: Server | None = None

    @property
    def stopping(self) -> bool:
        """True once a stop signal reached this worker."""
        return not self.alive or (self._server is not None and self._server.should_exit)

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        self._server = Server(config=self.config)
        asyncio.get_running_loop().add_signal_handler(signal.SIGQUIT, self._quit_now)
        await self._server.serve(sockets=self.sockets)
        if not self._server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def _quit_now(self) -> None:
        # uvicorn-worker maps SIGQUIT to gunicorn's handle_exit, which uvicorn never sees: the
        # master then waited out the graceful timeout. force_exit skips the wait for requests.
        self.alive = False
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
