"""The check routes' grammar: which binding and signing policy a check's path names.

`/auth` uses APPROOV_TOKEN_BINDING and APPROOV_MESSAGE_SIGNING; `-binding-<mode>` and
`-signing-<mode>` pin either or both (`/auth-binding-off-signing-required`), and `-monitor`
lets every failure through that monitor mode may, logged as `monitor`. Any of them may be
followed by `/<anything>`: the client's own path, appended by a proxy such as Envoy
(`path_prefix`). The policy ends at a hyphenated name, never at a slash, so nothing a client
appends after the proxy's prefix can reach a weaker policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from authsvc.policy import BindingMode, SigningMode

AUTH_PATH = "/auth"


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """The policy a check's path names."""

    binding: BindingMode
    signing: SigningMode
    monitored: bool
    appended: bool
    """A path-appending proxy (Envoy) put the client's path after the policy."""

    @property
    def single_use(self) -> bool:
        """An allow waits for the replay store's answer: the server's fast path cannot."""
        return self.signing is SigningMode.SINGLE_USE


MONITOR_SUFFIX = "-monitor"
SUFFIXES = (
    f"-binding-<{'|'.join(BindingMode)}>, -signing-<{'|'.join(SigningMode)}> and {MONITOR_SUFFIX}"
)
"""What may follow `/auth`, in this order, as a person reads it."""


def route_name(binding: str | None, signing: str | None, monitored: bool) -> str:
    """A route's check path without its slash, e.g. `auth-binding-off-signing-required-monitor`;
    a part that is None is not named (the setting's default applies)."""
    return (
        AUTH_PATH[1:]
        + ("" if binding is None else f"-binding-{binding}")
        + ("" if signing is None else f"-signing-{signing}")
        + (MONITOR_SUFFIX if monitored else "")
    )


def _named(kind: str, modes: type[BindingMode] | type[SigningMode]) -> str:
    return rf"(?:-{kind}-(?P<{kind}>" + "|".join(re.escape(mode.value) for mode in modes) + "))?"


_AUTH_ROUTE = re.compile(
    re.escape(AUTH_PATH)
    + _named("binding", BindingMode)
    + _named("signing", SigningMode)
    + rf"(?P<monitor>{MONITOR_SUFFIX})?"
    + r"(?P<client_path>/.*)?\Z",
    re.DOTALL,
)


def parse_route(
    path: str, default_binding: BindingMode, default_signing: SigningMode
) -> RoutePolicy | None:
    """The policy `path` names (a part it does not name: the default), or None if `path` is
    not a check route."""
    match = _AUTH_ROUTE.match(path) if path.startswith(AUTH_PATH) else None
    if match is None:
        return None
    binding, signing = match["binding"], match["signing"]
    return RoutePolicy(
        BindingMode(binding) if binding is not None else default_binding,
        SigningMode(signing) if signing is not None else default_signing,
        match["monitor"] is not None,
        match["client_path"] is not None,
    )
