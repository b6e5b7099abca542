"""The gunicorn worker: uvicorn's HTTP/1.1 server (httptools' C parser, uvloop) in a gunicorn
worker process, with gunicorn's signals kept meaningful.

gunicorn stays the process manager (workers, HUP reload, child_exit); uvicorn parses and writes
HTTP, which gunicorn's own asyncio worker did in pure Python at ~40% of a request.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any, ClassVar

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from authsvc.http.endpoint import CheckEndpoint
from authsvc.http.protocol import serving

if TYPE_CHECKING:
    from authsvc.http.extauthz import GrpcServer


# Each worker listens on the gRPC port itself (SO_REUSEPORT), not on a socket the master holds
# as for HTTP: on a reload (SIGHUP) a stopping worker keeps answering gRPC checks this long, while
# gunicorn's new workers boot and bind the port, or Envoy's new connections would be refused
# (measured: 42 refused connections and 31 checks answered 503 in one reload under load).
GRPC_LINGER_SECONDS = 3.0


class AuthWorker(UvicornWorker):  # type: ignore[misc]
    """SIGTERM (and SIGINT or SIGHUP to the worker): graceful — listeners closed, requests in
    flight and the next request on each idle keep-alive connection answered with
    `Connection: close`, idle connections closed within DRAIN_SECONDS. SIGQUIT (what gunicorn's
    master sends on its own SIGQUIT or SIGINT): stop at once. Either way the decision lines
    still pending are written before the worker exits."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        # `http`: the check protocol, once the server hands the worker its endpoint (serve).
        "ws": "none",  # no route upgrades: an upgrade request is answered, then closed
        "lifespan": "off",  # the app has no start-up or shut-down work of its own
        "server_header": False,
        "proxy_headers": False,  # authsvc reads no client address from headers
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Off unless --access-log: the decision line already logs every check.
        self.config.access_log = bool(self.cfg.accesslog)
        self._server: _FlushingServer | None = None
        self._checks: CheckEndpoint | None = None
        self._grpc_bind: str | None = None

    def serve(self, checks: CheckEndpoint, grpc_bind: str | None = None) -> None:
        """Answer checks with `checks` (AuthServer calls it once the app is loaded), over HTTP
        and, with `grpc_bind`, as Envoy's gRPC ext_authz too."""
        self.config.http = serving(checks)
        self._checks = checks
        self._grpc_bind = grpc_bind

    @property
    def stopping(self) -> bool:
        """True once a stop signal reached this worker."""
        return not self.alive or (self._server is not None and self._server.should_exit)

    async def _serve(self) -> None:
        if self._checks is None:  # a fast path silently off would double a check's cost
            self.log.error("no check endpoint was handed to this worker: not serving")
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        self.config.app = self.wsgi
        self._server = _FlushingServer(config=self.config)
        if self._grpc_bind is not None:
            # Imported only where gRPC is served: grpcio costs each worker ~12 MB.
            from authsvc.http import extauthz  # noqa: PLC0415

            try:
                self._server.grpc = await extauthz.start(self._checks, self._grpc_bind)
            except RuntimeError as error:  # the address is taken, or not one of this host
                self.log.error("gRPC cannot listen on %s: %s", self._grpc_bind, error)
                sys.exit(Arbiter.WORKER_BOOT_ERROR)
            self._server.grpc_grace = self.cfg.graceful_timeout
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGQUIT, self._quit_now)
        # By default SIGHUP would end a worker at once (`pkill -HUP authsvc` reaches workers
        # too): stop gracefully; the master, which reloads on SIGHUP, starts a new worker.
        loop.add_signal_handler(signal.SIGHUP, self._server.handle_exit, signal.SIGHUP, None)
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


class _FlushingServer(Server):
    """uvicorn's server, stopping the gRPC server beside it and writing the app's pending
    decision lines once its connections are done: after a graceful stop uvicorn raises the stop
    signal again, which ends the process before anything after `serve` runs."""

    grpc: GrpcServer | None = None
    grpc_grace: float = 0

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await asyncio.gather(super().shutdown(sockets), self._stop_grpc())
        finally:
            app: Any = self.config.app
            app.flush()

    async def _stop_grpc(self) -> None:
        if self.grpc is None:
            return
        if self.force_exit:
            await self.grpc.stop(grace=0, linger=0)
        else:
            await self.grpc.stop(grace=self.grpc_grace, linger=GRPC_LINGER_SECONDS)
