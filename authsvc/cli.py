"""Command line: serve, check-config, check-nginx, explain, token, sign, report.

Exit codes: 0 success (for explain: the token would be allowed), 1 configuration error or a
refused command, 2 usage error (for report: unreadable input), 3 explain: the token would be
denied.
"""

from __future__ import annotations

import argparse
import base64
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from authsvc.check.message import ClientRequest, fields_by_name
from authsvc.config import (
    PUBLIC_DUMMY_SECRET_B64,
    ConfigError,
    Settings,
    decode_account_key,
    parse_grpc_bind,
    parse_header_list,
    parse_header_name,
    redacted_url,
)
from authsvc.environment import load_environment
from authsvc.http.server import (
    DEFAULT_GRACEFUL_TIMEOUT,
    LOG_LEVELS,
    ServeOptions,
    default_workers,
    serve,
)
from authsvc.policy import BindingMode, Decision, SigningMode
from authsvc.runtime import Runtime
from authsvc.tools.devtoken import TEST_IPK, mint, parse_duration, sign_request
from authsvc.tools.explain import Signing, explain
from authsvc.tools.nginxcheck import ConfigFiles, ConfigUnreadable, find_traps, nginx_dump
from authsvc.tools.report import (
    DEFAULT_PREFIX_SEGMENTS,
    Unreadable,
    build,
    terminal_progress,
    text,
    write_json,
)
from authsvc.tools.reportpage import DEFAULT_TITLE, render

DEFAULT_BIND = "127.0.0.1:8002"
EXIT_REFUSED = 1
EXIT_UNREADABLE = 2
EXIT_DENIED = 3
PUBLIC_DUMMY_SECRET = base64.b64decode(PUBLIC_DUMMY_SECRET_B64)
T = TypeVar("T")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or name != name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a header like 'Name: value'")
    return name, value.strip()


def _setting(parse: Callable[[str], T], what: str = "") -> Callable[[str], T]:
    """An option read as its setting is (authsvc.config), with the setting's own error."""

    def read(text: str) -> T:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{what}{error}") from None

    return read


def _header_option(command: argparse.ArgumentParser, help_text: str, *flags: str) -> None:
    command.add_argument(
        *flags,
        type=_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help=f"{help_text}; repeatable",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authsvc",
        description="Approov token verification for nginx auth_request, ingress auth-url "
        "and Traefik forwardAuth. Settings come from APPROOV_* environment variables "
        "and ./.env (the environment wins).",
        epilog="exit codes: 0 success, 1 configuration error or refused, 2 usage error, "
        "3 (explain) the token would be denied",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_cmd = commands.add_parser(
        "serve",
        help="run the production server (gunicorn managing uvicorn workers)",
        description="Run the production server. Refuses to start on a configuration error. "
        "SIGTERM: graceful stop (readiness turns 503, open requests finish); "
        "SIGHUP: reload settings and keys.",
    )
    serve_cmd.add_argument(
        "--bind", default=DEFAULT_BIND, help="HOST:PORT or unix:PATH (default: %(default)s)"
    )
    serve_cmd.add_argument(
        "--grpc-bind",
        type=_setting(parse_grpc_bind),
        metavar="HOST:PORT",
        help="also answer Envoy's gRPC ext_authz (and grpc.health.v1) there, in every worker"
        " (default: APPROOV_GRPC_BIND; unset: HTTP only)",
    )
    serve_cmd.add_argument(
        "--workers",
        type=_positive_int,
        help="worker processes (default: one per CPU this process may use, within a"
        " container's CPU quota)",
    )
    serve_cmd.add_argument(
        "--graceful-timeout",
        type=_positive_int,
        default=DEFAULT_GRACEFUL_TIMEOUT,
        help="seconds a stopping or reloading worker keeps serving its open connections"
        " (default: %(default)s)",
    )
    serve_cmd.add_argument(
        "--access-log",
        action="store_true",
        help="also log every HTTP request (off: the decision line already logs each /auth)",
    )
    serve_cmd.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="server log level (default: info)"
    )
    serve_cmd.add_argument(
        "--metrics-dir",
        type=Path,
        help="directory for the workers' Prometheus values, emptied at start"
        " (default: a private temporary directory)",
    )

    commands.add_parser(
        "check-config",
        help="validate the configuration: list every problem, or print the effective settings",
        description="Exit 0 with a one-line summary (secrets masked), or 1 with every problem.",
    )

    explain_cmd = commands.add_parser(
        "explain",
        help="say why a token is allowed or rejected, check by check",
        description="Decode a token without trusting it, verify it with the configured keys, "
        "and print each check and the reason code. Exit 0 if allowed, 3 if denied.",
    )
    explain_cmd.add_argument("token", help="the Approov-Token header's value")
    explain_cmd.add_argument(
        "--binding", help="the binding header's value, e.g. 'Bearer x' (the Authorization value)"
    )
    explain_cmd.add_argument(
        "--policy",
        choices=[mode.value for mode in BindingMode],
        help="binding policy to check with (default: APPROOV_TOKEN_BINDING)",
    )
    explain_cmd.add_argument(
        "--signing",
        choices=[mode.value for mode in SigningMode],
        help="message signing policy (default: APPROOV_MESSAGE_SIGNING)",
    )
    explain_cmd.add_argument("--method", default="GET", help="the signed request's method")
    explain_cmd.add_argument("--url", help="the signed request's full URL, as the app called it")
    _header_option(
        explain_cmd, "a header of the signed request (Signature-Input, Signature, ...)", "--header"
    )

    nginx_cmd = commands.add_parser(
        "check-nginx",
        help="find the traps in an nginx config that uses the authsvc include",
        description="Read an nginx config (its includes followed, as nginx would) or a saved"
        " `nginx -T` dump; without PATH, run `nginx -T` (and check nginx has auth_request)."
        " Print each finding as FILE:LINE: what to change. Exit 0 clean, 1 findings.",
    )
    nginx_cmd.add_argument("path", nargs="?", type=Path, help="nginx.conf, or an `nginx -T` dump")
    nginx_cmd.add_argument(
        "--token-header",
        type=_setting(parse_header_name),
        help="the token header's name (default: APPROOV_TOKEN_HEADER, else Approov-Token)",
    )
    nginx_cmd.add_argument(
        "--binding-header",
        type=_setting(parse_header_list),
        help="the binding header(s), comma-separated (default: APPROOV_TOKEN_BINDING_HEADER,"
        " else Authorization)",
    )

    token_cmd = commands.add_parser(
        "token",
        help="mint a test token with the configured HS256 secret",
        description="Print an HS256 token signed with the configured secret. Refuses any "
        "secret but Approov's public dummy unless --dev is given.",
    )
    token_cmd.add_argument(
        "--expires",
        type=_setting(parse_duration),
        default=300,
        help="lifetime: 30s, 5m, 2h, 1d (default: 5m)",
    )
    token_cmd.add_argument("--binding", help="bind to this header value, e.g. 'Bearer x'")
    token_cmd.add_argument("--did", help="device id claim")
    token_cmd.add_argument(
        "--ipk",
        action="store_true",
        help="carry the test installation key (`authsvc sign` signs requests with it)",
    )
    token_cmd.add_argument(
        "--mskid",
        metavar="KEY_ID",
        help="name an account message signing key (`authsvc sign --account-secret` signs with it)",
    )
    token_cmd.add_argument(
        "--dev",
        action="store_true",
        help="allow a secret other than the public dummy (its tokens pass wherever it is used)",
    )

    sign_cmd = commands.add_parser(
        "sign",
        help="print a curl command for a request signed as an Approov SDK signs it (test key)",
        description="Sign a request with Approov's published test installation key, covering"
        " what the SDKs cover, and print it as a curl command. Its token must carry that key:"
        " `authsvc token --ipk`. With --account-secret, sign it as `account` instead, for a"
        " token that names the account key: `authsvc token --mskid ID`.",
    )
    sign_cmd.add_argument("url", help="the full URL, as the app calls it")
    sign_cmd.add_argument("--method", "-X", default="GET")
    _header_option(sign_cmd, "a header to send (and sign if the SDKs would)", "--header", "-H")
    sign_cmd.add_argument("--data", help="a body to send, signed through its Content-Digest")
    sign_cmd.add_argument(
        "--account-secret",
        type=_setting(decode_account_key, "the account key "),
        metavar="KEY",
        help="sign as `account` (hmac-sha256) with this account message signing key"
        " (base64url, as `approov secret -messageSigningKey get-base64url` prints it)",
    )

    report_cmd = commands.add_parser(
        "report",
        help="what enforcing would refuse, per route and path prefix, from decision lines",
        description="Count authsvc's decision lines (plain or gzip files, or stdin) per route"
        " policy, per path prefix and per hour: checks, allowed, would be refused if enforced"
        " (the monitor decisions), refused, and why. Lines that are not decision lines are"
        " skipped and counted. Exit 0, or 2 if an input cannot be read.",
    )
    report_cmd.add_argument(
        "files", nargs="*", metavar="FILE", help="decision log files (default: stdin; - is stdin)"
    )
    report_cmd.add_argument(
        "--prefix-segments",
        type=_positive_int,
        default=DEFAULT_PREFIX_SEGMENTS,
        help="path segments that make a prefix: 2 groups /api/v1/items/7 under /api/v1"
        " (default: %(default)s)",
    )
    report_cmd.add_argument(
        "--html", type=Path, metavar="FILE", help="also write a self-contained HTML page"
    )
    report_cmd.add_argument(
        "--title", default=DEFAULT_TITLE, help="the HTML page's title (default: %(default)s)"
    )
    report_cmd.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":  # reads decision lines, nothing of the settings
        return _report(args)
    try:
        settings = Settings.from_env(load_environment() if env is None else env)
        if args.command == "check-nginx":  # needs no key: it reads nginx's config, not tokens
            return _check_nginx(args, settings)
        if args.command == "sign":  # needs no key: it signs with the test installation key
            return _sign(args, settings.token_header)
        runtime = Runtime.from_settings(settings)
        if args.command == "check-config" and not runtime.keys.ready:
            url = redacted_url(settings.jwks_url or "")
            raise ConfigError([f"APPROOV_JWKS_URL: {url} could not be loaded"])
    except ConfigError as error:
        print(f"authsvc: {error}", file=sys.stderr)
        return EXIT_REFUSED
    if args.command == "check-config":
        print(f"{settings.summary()} loaded={runtime.keys.current.describe()}")
        return 0
    if args.command == "explain":
        return _explain(args, runtime)
    if args.command == "token":
        return _token(args, runtime)
    options = ServeOptions(
        bind=args.bind,
        workers=args.workers or default_workers(),
        graceful_timeout=args.graceful_timeout,
        access_log=args.access_log,
        log_level=args.log_level,
        metrics_dir=args.metrics_dir,
        grpc_bind=args.grpc_bind or settings.grpc_bind,
    )
    serve(runtime, options)
    return 0


def _explain(args: argparse.Namespace, runtime: Runtime) -> int:
    settings = runtime.settings
    mode = BindingMode(args.policy) if args.policy else settings.binding_mode
    signing_mode = SigningMode(args.signing) if args.signing else settings.signing_mode
    headers = [(settings.token_header, args.token), *args.header]
    if args.binding is not None and len(settings.binding_headers) == 1:
        headers.append((settings.binding_headers[0], args.binding))
    fields = fields_by_name(
        (name.encode("latin-1"), value.encode("utf-8", "surrogateescape"))
        for name, value in headers
    )
    request = ClientRequest(args.method, args.url, fields)
    explanation = explain(
        args.token,
        binding=args.binding,
        mode=mode,
        verifier=runtime.verifier,
        keys=runtime.keys.current,
        now=time.time(),
        signing=Signing(signing_mode, request, runtime.signatures),
        status_header=settings.status_header,
    )
    print(explanation.render())
    return EXIT_DENIED if explanation.verdict.decision is Decision.DENY else 0


def _token(args: argparse.Namespace, runtime: Runtime) -> int:
    secret = runtime.keys.current.secret
    if secret is None:
        print(
            "authsvc: token needs an HS256 secret (APPROOV_BASE64_SECRET or _FILE)",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    if secret != PUBLIC_DUMMY_SECRET and not args.dev:
        print(
            "authsvc: refusing to mint with a real secret: its tokens would pass in production."
            " Use Approov's dummy secret for tests, or pass --dev if you mean it.",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    ipk = TEST_IPK if args.ipk else None
    print(
        mint(
            secret,
            lifetime_seconds=args.expires,
            binding=args.binding,
            did=args.did,
            ipk=ipk,
            mskid=args.mskid,
        )
    )
    return 0


def _sign(args: argparse.Namespace, token_header: str) -> int:
    if not any(name.lower() == token_header.lower() for name, _ in args.header):
        minted = "--mskid ID" if args.account_secret else "--ipk"
        print(
            f'authsvc: sign needs the token: --header "{token_header}: $(authsvc token {minted})"',
            file=sys.stderr,
        )
        return EXIT_REFUSED
    body = args.data.encode() if args.data is not None else None
    added = sign_request(
        args.method,
        args.url,
        args.header,
        token_header=token_header,
        body=body,
        account_key=args.account_secret,
    )
    command = ["curl", "-sS", "-i", "-X", args.method]
    for name, value in [*args.header, *added]:
        command += ["-H", f"{name}: {value}"]
    if args.data is not None:
        command += ["--data-binary", args.data]
    print(shlex.join([*command, args.url]))
    return 0


def _check_nginx(args: argparse.Namespace, settings: Settings) -> int:
    token_header = args.token_header or settings.token_header
    binding_headers = args.binding_header or settings.binding_headers
    try:
        if args.path is None:
            dump, findings = nginx_dump()
            files = ConfigFiles.from_dump(dump)
        else:
            findings, files = [], ConfigFiles.from_path(args.path)
        findings += find_traps(files.parse(), token_header, binding_headers)
    except ConfigUnreadable as error:
        print(f"authsvc: {error}", file=sys.stderr)
        return EXIT_REFUSED
    for finding in findings:
        print(finding)
    if findings:
        count = len(findings)
        print(f"{count} finding{'s' if count != 1 else ''}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"ok: no traps found in {files.main} and its includes")
    return 0


def _report(args: argparse.Namespace) -> int:
    progress = terminal_progress(sys.stderr)
    try:
        report = build(args.files or ["-"], args.prefix_segments, progress)
    except Unreadable as error:
        print(f"authsvc report: {error}", file=sys.stderr)
        return EXIT_UNREADABLE
    if progress is not None:
        sys.stderr.write("\n")
    if args.html is not None:
        try:
            args.html.write_text(render(report, args.title))
        except OSError as error:
            print(f"authsvc report: cannot write {args.html}: {error.strerror}", file=sys.stderr)
            return EXIT_REFUSED
    if args.json:
        write_json(report, sys.stdout)
    else:
        sys.stdout.write(text(report))
    return 0
