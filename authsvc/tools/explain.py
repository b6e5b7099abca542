"""`authsvc explain`: why a token is allowed or rejected, each check in plain words.

The final answer is the verifier's own verdict; the lines before it describe the token (decoded
without trusting it) so that a person can see which check failed and why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authsvc.check.credentials import Credentials
from authsvc.check.jose import Malformed, parse_compact_jws
from authsvc.check.keys import KeySet
from authsvc.check.signing import ClientRequest, MessageSignatures, load_ipk, signature_base
from authsvc.check.verify import MAX_TOKEN_BYTES, Checker, Verdict, binding_pay
from authsvc.policy import BindingMode, Decision, SigningMode

UNTRUSTED = "(decoded, not trusted until the signature verifies)"


@dataclass(frozen=True, slots=True)
class Explanation:
    lines: tuple[tuple[str, str], ...]
    verdict: Verdict

    def render(self) -> str:
        width = max(len(label) for label, _ in self.lines)
        return "\n".join(f"{label:<{width}}  {text}" for label, text in self.lines)


@dataclass(frozen=True, slots=True)
class Signing:
    """What to check the message signature of: the policy, the request, the second stage."""

    mode: SigningMode
    request: ClientRequest
    signatures: MessageSignatures


def explain(
    token: str,
    *,
    binding: str | None,
    mode: BindingMode,
    verifier: Checker,
    keys: KeySet,
    now: float,
    signing: Signing | None = None,
) -> Explanation:
    raw = token.encode("utf-8", "surrogateescape")
    binding_value = binding.encode("utf-8", "surrogateescape") if binding is not None else None
    verdict = verifier.check(Credentials((raw,), binding_value), mode)
    if signing is not None:
        verdict = signing.signatures.check(verdict, signing.request, signing.mode)
    lines: list[tuple[str, str]] = [("size", f"{len(raw)} bytes (limit {MAX_TOKEN_BYTES})")]
    try:
        parsed = parse_compact_jws(raw)
    except Malformed as error:
        lines.append(("structure", f"REJECTED: {error}"))
    else:
        header, claims = parsed.header, parsed.claims
        lines += [
            ("structure", "ok: three base64url segments, UTF-8 JSON objects"),
            ("header", f"{json.dumps(header)} {UNTRUSTED}"),
            ("claims", f"{json.dumps(claims)} {UNTRUSTED}"),
            ("algorithm", _algorithm(header, keys)),
            ("signature", _signature(verdict)),
            ("exp", _time_claim(claims, "exp", now, required=True)),
            ("nbf", _time_claim(claims, "nbf", now, required=False)),
            ("binding", _binding(claims, binding_value, mode)),
        ]
        if signing is not None and signing.mode is not SigningMode.OFF:
            lines += _signature_lines(claims, signing, now)
    allowed = verdict.decision is not Decision.DENY
    outcome = "allowed (2xx)" if allowed else "denied (401)"
    if verdict.decision is Decision.MONITOR:
        outcome += ", only because this check is in monitor mode"
    lines.append(("result", f"{verdict.reason.value}: {outcome}"))
    return Explanation(tuple(lines), verdict)


def _algorithm(header: dict[str, Any], keys: KeySet) -> str:
    configured = ", ".join(sorted(keys.algorithms)) or "none"
    alg = header.get("alg")
    verdict = "allowed" if alg in keys.algorithms else "NOT allowed"
    kid = f", kid {header['kid']!r}" if "kid" in header else ""
    return f"{alg!r} {verdict} (the configured keys allow: {configured}){kid}"


def _signature(verdict: Verdict) -> str:
    if verdict.claims is not None:
        return f"ok, verified with key {verdict.key!r}"
    return f"not verified ({verdict.reason.value})"


def _time_claim(claims: dict[str, Any], name: str, now: float, *, required: bool) -> str:
    if name not in claims:
        return "MISSING (required)" if required else "absent (not checked)"
    value = claims[name]
    if type(value) not in (int, float):
        return f"{value!r} is NOT a JSON number"
    try:
        moment = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{value!r} is beyond what a date can hold"
    local = moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    delta = value - now
    when = f"in {_duration(delta)}" if delta > 0 else f"{_duration(-delta)} ago"
    return f"{value} = {local} ({when})"


def _duration(seconds: float) -> str:
    """The two largest units: "4min 12s", "3h 5min", "2d 1h"."""
    remaining = int(seconds)
    amounts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        amount, remaining = divmod(remaining, size)
        amounts.append(f"{amount}{unit}")
    first = next((i for i, text in enumerate(amounts) if not text.startswith("0")), 3)
    return " ".join(amounts[first : first + 2])


def _binding(claims: dict[str, Any], binding_value: bytes | None, mode: BindingMode) -> str:
    if mode is BindingMode.OFF:
        return "not checked (policy: binding off)"
    if "pay" not in claims:
        required = mode is BindingMode.REQUIRED
        return "MISSING: the token has no pay claim" if required else "no pay claim (allowed)"
    if binding_value is None:
        return f"pay {claims['pay']!r}; pass --binding '<Authorization value>' to compare"
    expected = binding_pay(binding_value)
    if claims["pay"] == expected:
        return f"ok: pay {expected!r} = base64(sha256(binding value))"
    return f"MISMATCH: pay {claims['pay']!r}, but the binding value gives {expected!r}"


def _signature_lines(claims: dict[str, Any], signing: Signing, now: float) -> list[tuple[str, str]]:
    """The message signature: the token's key, what was signed and when, the rebuilt base."""
    ipk = claims.get("ipk")
    if ipk is None:
        required = signing.mode is SigningMode.REQUIRED
        return [("ipk", "MISSING (policy: signing required)" if required else "absent: not signed")]
    valid = isinstance(ipk, str) and load_ipk(ipk) is not None
    lines = [("ipk", "ok: an EC P-256 public key" if valid else "INVALID: not a P-256 key")]
    request = signing.request
    inputs = request.fields.get("signature-input")
    if not inputs or not request.fields.get("signature"):
        return [
            *lines,
            (
                "signature-input",
                "MISSING: pass --header 'Signature-Input: ...' and --header 'Signature: ...'",
            ),
        ]
    signature_input = b", ".join(inputs).decode("latin-1")
    lines.append(("signature-input", signature_input))
    parameters = dict(re.findall(r";(created|expires)=(-?\d+)", signature_input))
    for name in ("created", "expires"):
        if name in parameters:
            lines.append(
                (name, _time_claim({name: int(parameters[name])}, name, now, required=False))
            )
    try:
        base = signature_base(request).decode("latin-1")
    except ValueError as error:
        covered = re.findall(r'"([^"]+)"', signature_input.partition(")")[0])
        absent = [
            name for name in covered if not name.startswith("@") and name not in request.fields
        ]
        hint = f"; pass --header for {', '.join(absent)}" if absent else ""
        return [*lines, ("base", f"NOT REBUILT: {error}{hint}")]
    lines += [("base" if index == 0 else "", line) for index, line in enumerate(base.split("\n"))]
    return lines
