"""`authsvc check-nginx`: the shipped configs are clean, and each trap in a config is caught."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from authsvc.cli import main
from authsvc.tools.nginxcheck import ConfigFiles, find_traps, nginx_dump
from demo import nginx

PORTS = nginx.Ports(8080, 8002, 8081)
EXAMPLE = "example.conf"
INCLUDE = "snippets/approov.conf"
SUBREQUEST = "snippets/approov-subrequest.conf"


def rendered(
    tmp_path: Path, edits: Sequence[tuple[str, str, str]] = (), auth_cache: bool = False
) -> Path:
    """The shipped files in tmp_path, with (file, old, new) edits applied."""
    main_file = nginx.render(tmp_path, PORTS, auth_cache=auth_cache)
    for name, old, new in edits:
        path = tmp_path / "conf" / name
        assert old in path.read_text(), (name, old)
        path.write_text(path.read_text().replace(old, new, 1))
    return main_file


def findings(
    main_file: Path,
    token_header: str = "Approov-Token",  # noqa: S107 - a header's name
    binding: tuple[str, ...] = ("Authorization",),
) -> list[str]:
    return [
        str(f) for f in find_traps(ConfigFiles.from_path(main_file).parse(), token_header, binding)
    ]


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# --- clean: what we ship ---------------------------------------------------------------------


@pytest.mark.parametrize("auth_cache", [False, True], ids=["as-shipped", "with-auth-cache"])
def test_the_shipped_example_and_demo_config_are_clean(tmp_path: Path, auth_cache: bool) -> None:
    assert findings(rendered(tmp_path, auth_cache=auth_cache)) == []


def test_the_compose_config_is_clean(tmp_path: Path) -> None:
    """deploy/compose/nginx/ laid out as the official image has /etc/nginx."""
    shutil.copytree(nginx.COMPOSE_DIR, tmp_path, dirs_exist_ok=True)
    main_file = tmp_path / "nginx.conf"
    main_file.write_text("events {}\nhttp {\n    include conf.d/*.conf;\n}\n")
    assert findings(main_file) == []


def test_a_saved_nginx_t_dump_reads_as_the_files_do(tmp_path: Path) -> None:
    main_file = rendered(
        tmp_path,
        [
            (
                EXAMPLE,
                "    location /public/ {",
                "    location /legacy {\n        return 302 /;\n    }\n    location /public/ {",
            )
        ],
    )
    files = {str(p): p.read_text() for p in sorted((tmp_path / "conf").rglob("*.conf"))}
    dump = "".join(
        f"# configuration file {name}:\n{text}\n"
        for name, text in [(str(main_file), files.pop(str(main_file))), *files.items()]
    )
    saved = tmp_path / "nginx-T.txt"
    saved.write_text(dump)
    assert findings(saved) == findings(main_file) != []


# --- one broken config per trap --------------------------------------------------------------

TRAPS = {
    "return-in-protected-location": (
        [
            (
                EXAMPLE,
                "    location /public/ {",
                "    location /old {\n        return 301 /api/;\n    }\n    location /public/ {",
            )
        ],
        EXAMPLE,
        "return 301 /api/",
        "`return` runs before auth_request",
    ),
    "auth-request-off-at-server-level": (
        [
            (
                EXAMPLE,
                "    include snippets/approov.conf;",
                "    include snippets/approov.conf;\n    auth_request off;",
            )
        ],
        EXAMPLE,
        "auth_request off;",
        "at server level switches the Approov check off",
    ),
    "auth-request-off-in-the-catch-all": (
        [
            (
                EXAMPLE,
                "    location / {\n        proxy_pass",
                "    location / {\n        auth_request off;\n        proxy_pass",
            )
        ],
        EXAMPLE,
        "    location / {",
        "opens the catch-all location `/`",
    ),
    "auth-location-passes-the-body": (
        [(SUBREQUEST, "proxy_pass_request_body off;", "")],
        INCLUDE,
        "    location ~ ^/_approov/(?<approov_policy>auth",
        "add `proxy_pass_request_body off;`",
    ),
    "auth-location-announces-content-length": (
        [(SUBREQUEST, 'proxy_set_header Content-Length "";', "")],
        INCLUDE,
        "    location ~ ^/_approov/(?<approov_policy>auth",
        'add `proxy_set_header Content-Length "";`',
    ),
    "device-id-lost-by-a-location-with-its-own-proxy-set-header": (
        [
            (
                EXAMPLE,
                "    location /login {\n",
                "    location /login {\n        proxy_set_header X-Login 1;\n",
            )
        ],
        EXAMPLE,
        "    location /login {",
        "a client-sent X-Approov-Did reaches the backend from this location (it sets its own",
    ),
    "device-id-never-set": (
        [(EXAMPLE, "    proxy_set_header X-Approov-Did $approov_did;\n", "")],
        EXAMPLE,
        "    location /public/ {",
        "add `proxy_set_header X-Approov-Did $approov_did;`",
    ),
    "own-error-page": (
        [
            (
                EXAMPLE,
                "    location /api/ {\n",
                "    location /api/ {\n        error_page 404 /404.html;\n",
            )
        ],
        EXAMPLE,
        "    location /api/ {",
        "own error_page replaces the include's (a denied client gets nginx's HTML 401",
    ),
    "own-auth-request-set": (
        [
            (
                EXAMPLE,
                "    location /api/ {\n",
                "    location /api/ {\n        auth_request_set $user $upstream_http_x_user;\n",
            )
        ],
        EXAMPLE,
        "    location /api/ {",
        "own auth_request_set replaces the include's ($approov_did and $approov_reason are empty",
    ),
    "add-header-in-the-error-location": (
        [
            (
                EXAMPLE,
                "    server_tokens off;\n",
                "    server_tokens off;\n    add_header Strict-Transport-Security max-age=1;\n",
            ),
            (
                INCLUDE,
                "location @approov_denied {\n",
                "location @approov_denied {\n    add_header X-Denied 1;\n",
            ),
        ],
        INCLUDE,
        "location @approov_denied {",
        "own add_header drops the server's (Strict-Transport-Security, Retry-After)",
    ),
    "auth-uri-no-location-serves": (
        [
            (
                EXAMPLE,
                "auth_request /_approov/auth-binding-off;",
                "auth_request /_approov/auth/binding-off;",
            )
        ],
        EXAMPLE,
        "auth_request /_approov/auth/binding-off;",
        "no location of this server serves the auth URI /_approov/auth/binding-off",
    ),
    "auth-uri-monitor-not-last": (
        [
            (
                EXAMPLE,
                "auth_request /_approov/auth-monitor;",
                "auth_request /_approov/auth-monitor-binding-off;",
            )
        ],
        EXAMPLE,
        "auth_request /_approov/auth-monitor-binding-off;",
        "no location of this server serves the auth URI /_approov/auth-monitor-binding-off",
    ),
}


@pytest.mark.parametrize("trap", TRAPS)
def test_each_trap_is_reported_at_its_file_and_line(tmp_path: Path, trap: str) -> None:
    edits, file, marker, message = TRAPS[trap]
    main_file = rendered(tmp_path, edits)
    where = tmp_path / "conf" / file
    expected = f"{where}:{line_of(where, marker)}: "
    assert any(f.startswith(expected) and message in f for f in findings(main_file)), findings(
        main_file
    )


def test_an_auth_request_inherited_from_http_level_is_checked_too(tmp_path: Path) -> None:
    main_file = tmp_path / "nginx.conf"
    main_file.write_text(
        "events {}\nhttp {\n    auth_request /nowhere;\n"
        "    server {\n        location / {\n            proxy_pass http://127.0.0.1:9;\n"
        "        }\n    }\n}\n"
    )
    found = findings(main_file)
    assert f"{main_file}:3: no location of this server serves the auth URI /nowhere" in found[0]


def test_a_cache_key_without_the_binding_header_is_reported(tmp_path: Path) -> None:
    key = 'proxy_cache_key "$uri $http_approov_token $http_authorization";'
    main_file = rendered(
        tmp_path,
        [(SUBREQUEST, key, 'proxy_cache_key "$uri $http_approov_token";')],
        auth_cache=True,
    )
    where = tmp_path / "conf" / SUBREQUEST
    line = line_of(where, "proxy_cache_key")
    # One finding, though the snippet is included by each of the include's auth locations.
    assert [f for f in findings(main_file) if "cache key" in f] == [
        f"{where}:{line}: the auth cache key lacks $http_authorization: a cached allow would be"
        " served to another token or binding value; key on the token and every binding header"
    ]


def test_a_cache_key_on_the_default_names_is_reported_when_the_headers_are_renamed(
    tmp_path: Path,
) -> None:
    """The include keys on Approov-Token and Authorization; renamed headers need their own."""
    main_file = rendered(tmp_path, auth_cache=True)
    found = findings(main_file, "X-App-Token", ("X-Session",))
    assert any("lacks $http_x_app_token, $http_x_session" in f for f in found), found


def test_nginx_without_auth_request_is_reported(tmp_path: Path) -> None:
    fake = tmp_path / "nginx"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = -V ]; then echo "arguments: --with-http_ssl_module" >&2; exit 0; fi\n'
        'printf "# configuration file /etc/nginx/nginx.conf:\\nevents {}\\n"\n'
    )
    fake.chmod(0o755)
    dump, found = nginx_dump(str(fake))
    assert [f.message for f in found] == [
        "this nginx is built without the auth_request module: install one that has it"
        " (Debian/Ubuntu: nginx-light, nginx-core or nginx-full)"
    ]
    assert ConfigFiles.from_dump(dump).main == "/etc/nginx/nginx.conf"


# --- the command -----------------------------------------------------------------------------


def test_check_nginx_exits_0_on_a_clean_config_and_needs_no_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-nginx", str(rendered(tmp_path))], env={}) == 0
    assert capsys.readouterr().out.startswith("ok: no traps found in ")


def test_check_nginx_exits_1_with_one_line_per_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edits, *_ = TRAPS["return-in-protected-location"]
    assert main(["check-nginx", str(rendered(tmp_path, edits))], env={}) == 1
    out, err = capsys.readouterr()
    assert out.count("\n") == 1
    assert "example.conf:" in out
    assert err == "1 finding\n"


def test_check_nginx_takes_the_header_names_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main_file = rendered(tmp_path, auth_cache=True)
    assert main(["check-nginx", str(main_file)], env={"APPROOV_TOKEN_HEADER": "X-App-Token"}) == 1
    assert "lacks $http_x_app_token" in capsys.readouterr().out


def test_a_config_nginx_cannot_parse_is_refused_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "nginx.conf"
    broken.write_text("http {\n    server {\n")
    assert main(["check-nginx", str(broken)], env={}) == 1
    assert f"authsvc: {broken}:" in capsys.readouterr().err


@pytest.mark.usefixtures("nginx_available")
def test_the_running_nginx_t_dump_of_the_shipped_config_is_clean(tmp_path: Path) -> None:
    main_file = rendered(tmp_path)
    dump = subprocess.run(
        nginx.command(tmp_path, "-T"), capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert find_traps(ConfigFiles.from_dump(dump).parse(), "Approov-Token", ["Authorization"]) == []
    assert ConfigFiles.from_dump(dump).main == str(main_file)
