"""`authsvc check-nginx`: the traps of an nginx config that uses the authsvc include.

Static: the config is parsed with crossplane (nginx's grammar), includes resolved as nginx
resolves them, and each protected server is checked against the rules nginx applies that a
config's author can overlook — chiefly that a level which sets any of an array directive
(`proxy_set_header`, `add_header`, `error_page`, `auth_request_set`) inherits none from above.
"""

from __future__ import annotations

import fnmatch
import glob
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crossplane

from authsvc.routes import SUFFIXES

Directive = dict[str, Any]

DEVICE_ID_HEADER = "x-approov-did"
# Directives a level inherits only if it sets none of its own.
_ARRAYS = ("proxy_set_header", "add_header", "error_page", "auth_request_set")
_DUMP_FILE = re.compile(r"^# configuration file (.+):$", re.MULTILINE)


class ConfigUnreadable(Exception):
    """The config could not be read or parsed; the message says where."""


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


# --- reading: a file and its includes, or an `nginx -T` dump --------------------------------


class ConfigFiles:
    """Config files by path, from the file system or from the files of an `nginx -T` dump."""

    def __init__(self, main: str, dumped: dict[str, str] | None = None) -> None:
        self.main = main
        self._dumped = dumped

    @classmethod
    def from_path(cls, path: Path) -> ConfigFiles:
        text = _read(path)
        if _DUMP_FILE.search(text):
            return cls.from_dump(text)
        return cls(str(path.resolve()))

    @classmethod
    def from_dump(cls, dump: str) -> ConfigFiles:
        """The files `nginx -T` printed, each after its `# configuration file PATH:` line."""
        parts = _DUMP_FILE.split(dump)
        # Each file's text starts after the newline that ends its header line.
        files = {
            name: text.removeprefix("\n")
            for name, text in zip(parts[1::2], parts[2::2], strict=True)
        }
        if not files:
            raise ConfigUnreadable("not an `nginx -T` dump: no `# configuration file` line")
        return cls(next(iter(files)), files)

    def matching(self, pattern: str) -> list[str]:
        """The files an `include` names, relative to the main file's folder as nginx has it."""
        if not pattern.startswith("/"):
            pattern = str(Path(self.main).parent / pattern)
        if self._dumped is not None:
            return sorted(name for name in self._dumped if fnmatch.fnmatchcase(name, pattern))
        return sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]

    def text(self, path: str) -> str:
        if self._dumped is not None:
            if path not in self._dumped:
                raise ConfigUnreadable(f"{path}: included, but not in the dump")
            return self._dumped[path]
        return _read(Path(path))

    def parse(self) -> list[Directive]:
        """The main file's directives with every include replaced by what it includes."""
        return self._resolved(self.main, ())

    def _resolved(self, path: str, including: tuple[str, ...]) -> list[Directive]:
        if path in including:
            raise ConfigUnreadable(f"{path}: includes itself")
        resolved: list[Directive] = []
        for directive in _parse_text(self.text(path), path):
            resolved += self._expand(directive, (*including, path))
        return resolved

    def _expand(self, directive: Directive, including: tuple[str, ...]) -> list[Directive]:
        if directive["directive"] == "include":
            return [
                inner
                for name in self.matching(directive["args"][0])
                for inner in self._resolved(name, including)
            ]
        if "block" in directive:
            directive["block"] = [
                d for inner in directive["block"] for d in self._expand(inner, including)
            ]
        return [directive]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise ConfigUnreadable(f"{path}: {error.strerror}") from None


def _parse_text(text: str, name: str) -> list[Directive]:
    """One file's directives (includes not followed), each marked with `name` and its line."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as copy:
        copy.write(text)
        copy.flush()
        result = crossplane.parse(
            copy.name, single=True, check_ctx=False, check_args=False, comments=False
        )
    if result["errors"]:
        error = result["errors"][0]
        raise ConfigUnreadable(f"{name}:{error['line']}: {error['error']}")
    parsed: list[Directive] = result["config"][0]["parsed"]
    _mark(parsed, name)
    return parsed


def _mark(directives: list[Directive], name: str) -> None:
    for directive in directives:
        directive["file"] = name
        _mark(directive.get("block", []), name)


def nginx_dump(nginx: str = "nginx") -> tuple[str, list[Finding]]:
    """`nginx -T` of the running installation, and a finding if it lacks auth_request."""
    try:
        version = subprocess.run(  # noqa: S603 - nginx, as the user asked
            [nginx, "-V"], capture_output=True, text=True, check=False, timeout=30
        )
        dump = subprocess.run(  # noqa: S603
            [nginx, "-T"], capture_output=True, text=True, check=False, timeout=30
        )
    except OSError as error:
        raise ConfigUnreadable(f"cannot run {nginx}: {error.strerror}") from None
    if dump.returncode != 0:
        raise ConfigUnreadable(f"`{nginx} -T` failed: {dump.stderr.strip()}")
    findings = []
    if "http_auth_request_module" not in version.stderr + version.stdout:
        findings.append(
            Finding(
                nginx,
                0,
                "this nginx is built without the auth_request module: install one that has it"
                " (Debian/Ubuntu: nginx-light, nginx-core or nginx-full)",
            )
        )
    return dump.stdout, findings


# --- the checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """A block (http, server, location, if) and the levels around it, innermost first."""

    directive: Directive
    outer: Level | None

    @property
    def block(self) -> list[Directive]:
        block: list[Directive] = self.directive.get("block", [])
        return block

    def own(self, name: str) -> list[Directive]:
        return [d for d in self.block if d["directive"] == name]

    def chain(self) -> Iterator[Level]:
        level: Level | None = self
        while level is not None:
            yield level
            level = level.outer

    def effective(self, name: str) -> list[Directive]:
        """What nginx applies here: this level's, else the nearest level above that has any."""
        return next((found for level in self.chain() if (found := level.own(name))), [])

    def at(self) -> tuple[str, int]:
        return self.directive["file"], self.directive["line"]

    def finding(self, message: str) -> Finding:
        return Finding(*self.at(), message)


def find_traps(
    directives: list[Directive], token_header: str, binding_headers: Sequence[str]
) -> list[Finding]:
    findings: list[Finding] = []
    for http in (d for d in directives if d["directive"] == "http"):
        http_level = Level(http, None)
        findings += _auth_request_off_at(http_level, "http")
        for server in http_level.own("server"):
            findings += _check_server(Level(server, http_level), token_header, binding_headers)
    # A snippet included in several places reports its line once.
    return sorted(set(findings), key=lambda f: (f.file, f.line, f.message))


def _locations(level: Level) -> Iterator[Level]:
    for location in level.own("location"):
        inner = Level(location, level)
        yield inner
        yield from _locations(inner)


def _check_server(
    server: Level, token_header: str, binding_headers: Sequence[str]
) -> list[Finding]:
    locations = list(_locations(server))
    # Every auth_request in effect here, wherever written (http level included).
    auth_requests = {
        d["args"][0]: d
        for level in (server, *locations)
        for d in level.effective("auth_request")
        if d["args"][0] != "off"
    }
    auth_uris = set(auth_requests)
    if not auth_uris:
        return []  # not a server the include protects
    auth_locations = [loc for loc in locations if _serves(loc, auth_uris)]
    device_id_variables = {
        d["args"][0]
        for level in (server, *locations)
        for d in level.own("auth_request_set")
        if d["args"][1:] == [f"$upstream_http_{DEVICE_ID_HEADER.replace('-', '_')}"]
    }
    findings = _auth_request_off_at(server, "server")
    findings += _unserved_auth_uris(locations, auth_requests)
    for location in locations:
        if location in auth_locations:
            findings += _check_auth_location(location, token_header, binding_headers)
            continue
        if _is_error_location(location, server):
            findings += _check_error_location(location)
            continue
        if location.own("internal"):
            continue  # no client reaches it (the include's unused policy locations, say)
        if _protected(location):
            findings += _check_protected(location)
        elif any(d["args"] == ["off"] for d in location.own("auth_request")) and location.directive[
            "args"
        ] in (["/"], ["=", "/"]):
            findings.append(
                location.finding(
                    "`auth_request off` opens the catch-all location `/`: every path no other"
                    " location matches skips the Approov check; open only the locations meant"
                    " to be public"
                )
            )
        if location.own("proxy_pass"):
            findings += _check_device_id(location, device_id_variables)
    return findings


def _serves(location: Level, uris: set[str]) -> bool:
    """An exact or regex location for one of `uris` (the include has one regex location for
    every policy)."""
    args = location.directive["args"]
    if len(args) != 2:
        return False
    if args[0] == "=":
        return args[1] in uris
    if args[0] in {"~", "~*"}:
        pattern = _python_regex(args[1], ignore_case=args[0] == "~*")
        return pattern is not None and any(pattern.search(uri) for uri in uris)
    return False


def _python_regex(pcre: str, *, ignore_case: bool) -> re.Pattern[str] | None:
    """nginx's PCRE regex in Python's syntax (named groups), or None if Python cannot read it."""
    try:
        return re.compile(
            re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", pcre), re.IGNORECASE if ignore_case else 0
        )
    except re.error:
        return None


def _protected(location: Level) -> bool:
    """A location a client can reach whose requests go through auth_request."""
    if location.own("internal") or location.directive["args"][0].startswith("@"):
        return False
    effective = location.effective("auth_request")
    return bool(effective) and effective[0]["args"][0] != "off"


def _is_error_location(location: Level, server: Level) -> bool:
    targets = {d["args"][-1] for d in server.own("error_page")}
    return location.directive["args"][0] in targets


def _auth_request_off_at(level: Level, name: str) -> list[Finding]:
    return [
        Finding(
            d["file"],
            d["line"],
            f"`auth_request off` at {name} level switches the Approov check off for every"
            " location below it; put it only in the locations meant to be public",
        )
        for d in level.own("auth_request")
        if d["args"] == ["off"]
    ]


def _unserved_auth_uris(
    locations: list[Level], auth_requests: dict[str, Directive]
) -> list[Finding]:
    return [
        Finding(
            directive["file"],
            directive["line"],
            f"no location of this server serves the auth URI {uri}: the subrequest"
            " would reach another location; use /_approov/auth, optionally followed by"
            f" {SUFFIXES}, from the include",
        )
        for uri, directive in sorted(auth_requests.items())
        if not any(_serves(location, {uri}) for location in locations)
    ]


def _check_auth_location(
    location: Level, token_header: str, binding_headers: Sequence[str]
) -> list[Finding]:
    findings = []
    if not any(d["args"] == ["off"] for d in location.effective("proxy_pass_request_body")):
        findings.append(
            location.finding(
                "the auth location passes the client's body to authsvc, which never reads it:"
                " add `proxy_pass_request_body off;`"
            )
        )
    if not any(
        d["args"][0].lower() == "content-length" and d["args"][1:] == [""]
        for d in location.effective("proxy_set_header")
    ):
        findings.append(
            location.finding(
                "the auth location announces the client's Content-Length on a subrequest"
                ' without a body: add `proxy_set_header Content-Length "";`'
            )
        )
    caching = [d for d in location.effective("proxy_cache") if d["args"] != ["off"]]
    for key in location.effective("proxy_cache_key") if caching else []:
        wanted = [_variable(token_header), *map(_variable, binding_headers)]
        missing = [name for name in wanted if name not in key["args"][0]]
        if missing:
            findings.append(
                Finding(
                    key["file"],
                    key["line"],
                    f"the auth cache key lacks {', '.join(missing)}: a cached allow would be"
                    " served to another token or binding value; key on the token and every"
                    " binding header",
                )
            )
    return findings


def _check_error_location(location: Level) -> list[Finding]:
    outer = location.outer.effective("add_header") if location.outer else []
    if location.own("add_header") and outer:
        return [
            location.finding(
                "this error location's own add_header drops the server's"
                f" ({', '.join(d['args'][0] for d in outer)}) from the 401/503: repeat them here"
            )
        ]
    return []


def _check_protected(location: Level) -> list[Finding]:
    findings = []
    returns = [d for level in [location, *_ifs(location)] for d in level.own("return")]
    findings += [
        Finding(
            d["file"],
            d["line"],
            "`return` runs before auth_request: this location answers without the Approov"
            " check; serve it from a location with `auth_request off;`, or proxy instead",
        )
        for d in returns
    ]
    for name, lines in (
        (
            "error_page",
            "`error_page 401 = @approov_denied;` and `error_page 500 = @approov_error;`",
        ),
        ("auth_request_set", "the include's four `auth_request_set` lines"),
    ):
        above = location.outer.effective(name) if location.outer else []
        if location.own(name) and above:
            consequence = (
                "a denied client gets nginx's HTML 401 and an outage a 500"
                if name == "error_page"
                else "$approov_did and $approov_reason are empty here"
            )
            findings.append(
                location.finding(
                    f"this location's own {name} replaces the include's ({consequence}):"
                    f" repeat {lines} here"
                )
            )
    return findings


def _ifs(level: Level) -> Iterator[Level]:
    for block in level.own("if"):
        inner = Level(block, level)
        yield inner
        yield from _ifs(inner)


def _check_device_id(location: Level, variables: set[str]) -> list[Finding]:
    sets = [
        d
        for d in location.effective("proxy_set_header")
        if d["args"][0].lower() == DEVICE_ID_HEADER
    ]
    if any(d["args"][1:] and d["args"][1] in variables for d in sets):
        return []
    inherited = (
        " (it sets its own proxy_set_header, so it inherits none)"
        if location.own("proxy_set_header")
        else ""
    )
    return [
        location.finding(
            "a client-sent X-Approov-Did reaches the backend from this location"
            f"{inherited}: add `proxy_set_header X-Approov-Did $approov_did;`"
        )
    ]


def _variable(header: str) -> str:
    return "$http_" + header.lower().replace("-", "_")
