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
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

# How long a stopping worker keeps an idle kept-alive connection open for one last request.
DRAIN_SECONDS = 1.0


class DrainingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a graceful stop that never resets a proxy's check.

    uvicorn closes an idle kept-alive connection the moment a stop begins. A proxy may be
    sending a check on it at that instant (or the worker accepted it and has not read its
    request yet): the close then resets that check, and nginx, which retries once, answers 503
    when the retry meets a second such connection (measured under load through a SIGHUP
    reload). Here an idle connection stays open: its next request is answered with
    `Connection: close`, and one that stays idle is closed after DRAIN_SECONDS.
    """

    _draining = False

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._draining = True
            self.loop.call_later(DRAIN_SECONDS, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._draining:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing():
            self.transport.close()


class AuthWorker(UvicornWorker):  # type: ignore[misc]
    """SIGTERM (and SIGINT to the worker): graceful — listeners closed, requests in flight and
    the next request on each idle keep-alive connection answered with `Connection: close`, idle
    connections closed within DRAIN_SECONDS. SIGQUIT (what gunicorn's master sends on its own
    SIGQUIT or SIGINT): stop at once."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        "http": DrainingProtocol,
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
