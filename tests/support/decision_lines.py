"""Synthetic decision logs for `authsvc report`: written by authsvc's own DecisionLog, so they
are the lines authsvc writes, with a record of what each line says for an independent count.

`python -m tests.support.decision_lines LINES` writes such a log to stdout (`make report-example`).

A rollout as an operator would see it: /api/v1 monitored (an old app version without binding
on three devices), /login enforced (some clients send no token), /signed monitored (apps that
do not sign yet), with gunicorn's own log lines in between.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass

from authsvc.check.verify import Verdict
from authsvc.observe.decisionlog import DecisionLog
from authsvc.policy import Decision, Reason

START = 1_795_435_200.0  # 2026-11-23T12:00:00Z
NOISE = "[2026-11-23 12:00:00 +0000] [12] [INFO] Booting worker with pid: 12\n"


@dataclass(frozen=True)
class Logged:
    """What one decision line says."""

    time: float
    decision: str
    reason: str
    policy: str
    signing: str
    monitored: bool
    uri: str
    did: str | None
    approov_status: str | None


@dataclass(frozen=True)
class Route:
    prefix: str
    leaf: str  # what follows the prefix in a URI, `{n}` a number
    policy: str
    signing: str
    monitored: bool
    # (weight, reason, device ids it comes from, the fetch statuses its apps report, None for
    # none); reason ok is an allow.
    outcomes: tuple[tuple[int, Reason, tuple[str, ...], tuple[str | None, ...]], ...]


ROUTES = (
    Route(
        "/api/v1",
        "/items/{n}",
        "required",
        "off",
        True,
        (
            (996, Reason.OK, ("dev-a", "dev-b", "dev-c", "dev-d", "dev-e"), ("success", None)),
            (3, Reason.BINDING_MISSING, ("old-1", "old-2", "old-3"), (None,)),
            (1, Reason.EXPIRED, ("dev-a", "dev-b"), ("success",)),
            # okhttp 3.7+: an app that could not get a token sends its request all the same
            (2, Reason.TOKEN_MISSING, (), ("no_network", "no_network", "poor_network")),
        ),
    ),
    Route(
        "/login",
        "",
        "off",
        "off",
        False,
        (
            (97, Reason.OK, ("dev-a", "dev-f"), (None,)),
            (3, Reason.TOKEN_MISSING, (), (None, None, "rejected")),
        ),
    ),
    Route(
        "/signed/orders",
        "/{n}",
        "required",
        "required",
        True,
        (
            (90, Reason.OK, ("dev-a",), (None,)),
            (9, Reason.MESSAGE_SIGNATURE_MISSING, ("dev-g", "dev-h"), (None,)),
            (1, Reason.MESSAGE_TARGET_UNKNOWN, ("dev-a",), (None,)),
        ),
    ),
)


def decide(route: Route, reason: Reason) -> Decision:
    if reason is Reason.OK:
        return Decision.ALLOW
    if route.monitored and not reason.always_denied:
        return Decision.MONITOR
    return Decision.DENY


def generate(lines: int, *, seed: int = 7, hours: int = 24) -> Iterator[tuple[str, Logged | None]]:
    """`lines` log lines over `hours` hours: (line, what it says), None for a line that is not
    a decision (one in fifty)."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible synthetic log, no secret)
    weights = [10, 2, 1]
    clock = [START]
    stream = io.StringIO()
    log = DecisionLog(stream, clock=lambda: clock[0])
    for number in range(lines):
        clock[0] = START + hours * 3600 * number / lines
        if number % 50 == 49:
            yield NOISE, None
            continue
        route = rng.choices(ROUTES, weights)[0]
        weight_table = [weight for weight, _, _, _ in route.outcomes]
        _, reason, devices, statuses = rng.choices(route.outcomes, weight_table)[0]
        did = rng.choice(devices) if devices else None
        status = rng.choice(statuses)
        claims = None if reason is Reason.TOKEN_MISSING else {"exp": START + 86400, "did": did}
        decision = decide(route, reason)
        leaf = route.leaf.format(n=rng.randrange(1000))
        uri = f"{route.prefix}{leaf}?page={rng.randrange(3)}"
        log.record(
            Verdict(reason, decision, claims, "secret" if claims else None),
            binding=route.policy,
            signing=route.signing,
            monitored=route.monitored,
            method="GET",
            uri=uri,
            request_id=f"{number:032x}",
            latency_ms=0.4,
            approov_status=status,
        )
        line = stream.getvalue()
        stream.seek(0)
        stream.truncate()
        logged = Logged(
            clock[0],
            decision.value,
            reason.value,
            route.policy,
            route.signing,
            route.monitored,
            uri,
            did if claims else None,
            status,
        )
        yield line, logged


if __name__ == "__main__":
    import sys

    sys.stdout.writelines(line for line, _ in generate(int(sys.argv[1])))
