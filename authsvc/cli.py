"""Command line: `authsvc serve` and `authsvc check-config`.

Exit codes: 0 success, 1 configuration error, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from authsvc.config import ConfigError, Settings
from authsvc.environment import load_environment
from authsvc.keys import KeySource
from authsvc.server import DEFAULT_GRACEFUL_TIMEOUT, serve

DEFAULT_BIND = "127.0.0.1:8002"
EXIT_CONFIG_ERROR = 1


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _default_workers() -> int:
    # CPUs this process may run on (respects cpusets, unlike os.cpu_count()).
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authsvc",
        description="Approov token verification for nginx auth_request, ingress auth-url "
        "and Traefik forwardAuth. Settings come from APPROOV_* environment variables "
        "and ./.env (the environment wins).",
        epilog="exit codes: 0 success, 1 configuration error, 2 usage error",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the production server (gunicorn, asyncio workers)",
        description="Run the production server. Refuses to start on a configuration error.",
    )
    serve.add_argument(
        "--bind",
        default=DEFAULT_BIND,
        help="HOST:PORT or unix:PATH to listen on (default: %(default)s)",
    )
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=_default_workers(),
        help="worker processes; about one per CPU (default here: %(default)s)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=_positive_int,
        default=DEFAULT_GRACEFUL_TIMEOUT,
        help="seconds a stopping or reloading worker keeps serving its open connections"
        " (default: %(default)s)",
    )
    commands.add_parser(
        "check-config",
        help="validate the configuration: list every problem, or print the effective settings",
        description="Exit 0 with a one-line summary (secret masked), or 1 with every problem.",
    )
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(load_environment() if env is None else env)
        keys = KeySource.from_settings(settings)
        if args.command == "check-config" and not keys.ready:
            raise ConfigError([f"APPROOV_JWKS_URL: {settings.jwks_url} could not be loaded"])
    except ConfigError as error:
        print(f"authsvc: {error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if args.command == "check-config":
        print(f"{settings.summary()} loaded={keys.current.describe()}")
        return 0
    serve(
        settings,
        keys,
        bind=args.bind,
        workers=args.workers,
        graceful_timeout=args.graceful_timeout,
    )
    return 0
