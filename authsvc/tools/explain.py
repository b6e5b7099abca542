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
from authsvc.check.message import ClientRequest
from authsvc.check.signing import (
    ACCOUNT_LABEL,
    LABEL,
    MessageSignatures,
    load_ipk,
    signature_base,
)
from authsvc.check.verify import MAX_TOKEN_BYTES, Checker, Verdict, binding_pay
from authsvc.config import DEFAULT_STATUS_HEADER
from authsvc.observe.trace import approov_trace_id, w3c_trace_id
from authsvc.policy import BindingMode, Decision, SigningMode, approov_status

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
    status_header: str | None = DEFAULT_STATUS_HEADER,
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
    if signing is not None:
        lines += _reported_lines(signing.request, status_header)
    if verdict.signed_by is not None:
        lines.append(("signed-by", f"{verdict.signed_by} (logged as signed_by)"))
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


def _reported_lines(request: ClientRequest, status_header: str | None) -> list[tuple[str, str]]:
    """What the app reported besides its token, as the decision line records it."""
    lines = []
    if status_header is not None and request.fields.get(status_header.lower()):
        (value, *_) = request.fields[status_header.lower()]
        lines.append(
            (
                status_header.lower(),
                f"{value.decode('latin-1')!r}: approov_status {approov_status(value)!r} (the"
                " app's own word of its token fetch: explains a denial, never changes one)",
            )
        )
    for name, read, logged in (
        ("approov-traceid", approov_trace_id, "approov_trace_id"),
        ("traceparent", w3c_trace_id, "trace_id"),
    ):
        if request.fields.get(name):
            trace_id = read(request.fields[name][0])
            read_as = f"logged as {logged} {trace_id!r}" if trace_id else "NOT an id: not logged"
            lines.append((name, read_as))
    return lines


def _signature_lines(claims: dict[str, Any], signing: Signing, now: float) -> list[tuple[str, str]]:
    """The message signature: the key the token names, what was signed and when, the rebuilt
    base: `install` with `ipk`, else `account` with `mskid` and the account key."""
    ipk, mskid = claims.get("ipk"), claims.get("mskid")
    signatures = signing.signatures
    required = signing.mode is SigningMode.REQUIRED
    if ipk is not None:
        valid = isinstance(ipk, str) and load_ipk(ipk) is not None
        label = LABEL
        lines = [("ipk", "ok: an EC P-256 public key" if valid else "INVALID: not a P-256 key")]
    elif mskid is not None and signatures.account_key_configured:
        label = ACCOUNT_LABEL
        key_id = signatures.account_key_id
        if key_id is not None and mskid != key_id:
            return [("mskid", f"MISMATCH: {mskid!r}, the configured key id is {key_id!r}")]
        named = "names the configured account key" if key_id else "any key id is accepted"
        lines = [("mskid", f"{mskid!r}: {named}; the account signature is checked")]
    else:
        no_key = (
            f"mskid {mskid!r}, but no account key is configured"
            " (APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET)"
            if mskid is not None
            else "the token has neither ipk nor mskid"
        )
        verdict = "MISSING (policy: signing required)" if required else "not signed"
        return [("key", f"{verdict}: {no_key}")]
    lines.append(("label", f"{label}: the signature checked"))
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
    member = re.search(rf"(?:^|,\s*){label}=(\([^)]*\)[^,]*)", signature_input)
    if member is None:
        return [*lines, ("signature", f"MISSING: no member labelled {label!r}")]
    parameters = dict(re.findall(r";(created|expires)=(-?\d+)", member[1]))
    for name in ("created", "expires"):
        if name in parameters:
            lines.append(
                (name, _time_claim({name: int(parameters[name])}, name, now, required=False))
            )
    try:
        base = signature_base(request, label).decode("latin-1")
    except ValueError as error:
        covered = re.findall(r'"([^"]+)"', member[1].partition(")")[0])
        absent = [
            name for name in covered if not name.startswith("@") and name not in request.fields
        ]
        hint = f"; pass --header for {', '.join(absent)}" if absent else ""
        return [*lines, ("base", f"NOT REBUILT: {error}{hint}")]
    lines += [("base" if index == 0 else "", line) for index, line in enumerate(base.split("\n"))]
    return lines
