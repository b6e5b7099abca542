"""`authsvc token`: mint a test token with the configured secret, safely.

It refuses a real secret unless told `--dev`: a token it signs would pass in production.
"""

from __future__ import annotations

import re
import time
from typing import Any

import jwt

from authsvc.verify import binding_pay

_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_LIFETIME_SECONDS = 7 * 86400


def parse_duration(text: str) -> int:
    """Seconds in "90", "90s", "5m", "2h" or "1d"; from 1 s to 7 days."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 2h or 1d")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not 1 <= seconds <= MAX_LIFETIME_SECONDS:
        raise ValueError(f"{text!r} is not between 1s and 7d")
    return seconds


def mint(
    secret: bytes,
    *,
    lifetime_seconds: int,
    binding: str | None = None,
    did: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 token shaped like Approov's: exp, and pay/did when asked for."""
    claims: dict[str, Any] = {"exp": int((now or time.time()) + lifetime_seconds)}
    if binding is not None:
        claims["pay"] = binding_pay(binding.encode("utf-8", "surrogateescape"))
    if did is not None:
        claims["did"] = did
    return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "JWT"})
