"""The production server: gunicorn managing uvicorn workers (authsvc.http.worker), tuned for
checks."""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gunicorn.app.base import BaseApplication

from authsvc.config import REPLAY_STORE_MEMORY, ConfigError
from authsvc.environment import load_environment
from authsvc.http.app import AsgiApp, AuthService, create_app
from authsvc.http.worker import AuthWorker
from authsvc.observe.metrics import MULTIPROCESS_DIR_VARIABLE
from authsvc.runtime import Runtime, load

log = logging.getLogger("gunicorn.error")
# authsvc's own modules log on their `__name__`, beside gunicorn's lines and in their format,
# with the module named: an operator (and the end-to-end tests) can tell every error apart.
AUTHSVC_LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

# A stopping worker answers with `Connection: close` meanwhile, so nginx moves to new workers.
DEFAULT_GRACEFUL_TIMEOUT = 30
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

DEFAULT_OPTIONS: Mapping[str, Any] = {
    # uvicorn (httptools' C parser, uvloop) in gunicorn's processes: measured against gunicorn's
    # own asyncio worker in bench/README.md. A slow client parks a coroutine, never a thread;
    # httptools puts no limit on header size or count, so nothing nginx or Envoy forwards is
    # refused for size (a 431 would reach the client as a 500).
    "worker_class": "authsvc.http.worker.AuthWorker",
    # Longer than nginx's upstream keepalive_timeout (60s): nginx closes idle connections first,
    # so it never sends a subrequest on a connection authsvc is closing.
    "keepalive": 75,
    "errorlog": "-",
    "proc_name": "authsvc",
    "graceful_timeout": DEFAULT_GRACEFUL_TIMEOUT,
    # gunicorn 27's control socket would be created in $HOME; authsvc has no use for it.
    "control_socket_disable": True,
}


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def default_workers(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """One worker per CPU this process may use: its CPU set, capped by a container's CPU quota
    (cgroup v2 `cpu.max`), so a 2-CPU container on a 64-core host does not start 64 workers."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus or 1
    if quota == "max":
        return cpus or 1
    return max(1, min(cpus or 1, math.ceil(int(quota) / int(period))))


@dataclass(frozen=True, slots=True)
class ServeOptions:
    bind: str
    workers: int
    graceful_timeout: int = DEFAULT_GRACEFUL_TIMEOUT
    access_log: bool = False
    """Off by default: the decision line on stdout is the log of every request."""
    log_level: str = "info"
    metrics_dir: Path | None = None
    """Where workers keep their Prometheus values; a private temporary directory if None."""
    grpc_bind: str | None = None
    """HOST:PORT for Envoy's gRPC ext_authz, in every worker; None: HTTP only."""

    def gunicorn(self) -> dict[str, Any]:
        return {
            "bind": [self.bind],
            "workers": self.workers,
            "graceful_timeout": self.graceful_timeout,
            "accesslog": "-" if self.access_log else None,
            "loglevel": self.log_level,
        }


class WorkerState:
    """Lets the app see, from inside a worker, whether that worker is stopping."""

    def __init__(self) -> None:
        self._worker: AuthWorker | None = None

    def attach(self, worker: AuthWorker) -> None:
        self._worker = worker

    def stopping(self) -> bool:
        return self._worker is not None and self._worker.stopping


class AuthServer(BaseApplication):  # type: ignore[misc]
    """gunicorn running `create_app`; settings and keys are loaded in the master, before forking.

    `kill -HUP <master>` reloads: settings and key files are read again, and only if they are
    all valid do the new workers use them; otherwise the errors are logged and the new workers
    keep the previous configuration.
    """

    def __init__(
        self, runtime: Runtime, options: Mapping[str, Any], grpc_bind: str | None = None
    ) -> None:
        self._runtime = runtime
        self._grpc_bind = grpc_bind
        self._app: AuthService
        self._worker_state = WorkerState()
        self._options = {
            **DEFAULT_OPTIONS,
            "post_worker_init": self._worker_ready,
            "child_exit": _forget_worker_metrics,
            **options,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def reload(self) -> None:
        try:
            runtime = load(load_environment())
        except ConfigError as error:
            log.error("reload refused, keeping the running configuration: %s", error)
            self._runtime.keys.note_refused_reload()
        else:
            self._runtime = runtime
            log.info("reloaded: keys %s", runtime.keys.current.describe())
        super().reload()

    def load(self) -> AsgiApp:
        # In each worker: the JWKS URL (if any) is refreshed by a thread of its own.
        self._runtime.keys.start_refreshing()
        self._app = create_app(self._runtime, is_stopping=self._worker_state.stopping)
        return self._app

    def _worker_ready(self, worker: AuthWorker) -> None:
        """gunicorn's post_worker_init hook, in the worker once `load` has run there."""
        self._worker_state.attach(worker)
        worker.serve(self._app.checks, self._grpc_bind)


def _forget_worker_metrics(server: Any, worker: Any) -> None:
    """gunicorn's child_exit hook: drop a dead worker's live gauges (its counters stay summed)."""
    from prometheus_client import multiprocess  # noqa: PLC0415 - see authsvc.observe.metrics

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def log_authsvc_modules(logger: logging.Logger, level: str, stream: IO[str]) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(AUTHSVC_LOG_FORMAT, "%Y-%m-%d %H:%M:%S %z"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


def serve(runtime: Runtime, options: ServeOptions) -> None:
    """Run gunicorn until it stops, with a clean Prometheus multiprocess directory."""
    private = options.metrics_dir is None
    metrics_dir = options.metrics_dir or Path(tempfile.mkdtemp(prefix="authsvc-metrics-"))
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):  # values of an earlier run would be summed in
        stale.unlink()
    os.environ[MULTIPROCESS_DIR_VARIABLE] = str(metrics_dir)
    log_authsvc_modules(logging.getLogger("authsvc"), options.log_level, sys.stderr)
    started = logging.getLogger(__name__)
    started.info("starting %d workers: %s", options.workers, runtime.settings.summary())
    if options.grpc_bind is not None:
        started.info("gRPC ext_authz (and grpc.health.v1) on %s in every worker", options.grpc_bind)
    if runtime.settings.replay_store == REPLAY_STORE_MEMORY:
        started.warning(
            "APPROOV_REPLAY_STORE=memory: each of the %d workers, and each replica, accepts a"
            " single-use signature once; share a Redis or Valkey store for once across them",
            options.workers,
        )
    master = os.getpid()
    try:
        AuthServer(runtime, options.gunicorn(), options.grpc_bind).run()
    finally:
        # Workers are forked inside run() and leave through here too: only the master cleans.
        if private and os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)
