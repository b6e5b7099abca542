"""`authsvc explain`: why a token is allowed or rejected, each check in plain words.

The verifier and the signing stage say which of their rules ran and which one failed
(`trace`), so an explanation cannot disagree with a check: this module only puts their steps
into words, beside what the token says (decoded without trusting it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from authsvc.check.credentials import Credentials
from authsvc.check.jose import Malformed, parse_compact_jws
from authsvc.check.keys import KeySet
from authsvc.check.message import ClientRequest
from authsvc.check.rules import Step
from authsvc.check.signing import MessageSignatures
from authsvc.check.verify import MAX_TOKEN_BYTES, Checker, Verdict, binding_pay
from authsvc.config import DEFAULT_STATUS_HEADER
from authsvc.observe.trace import approov_trace_id, w3c_trace_id
from authsvc.policy import BindingMode, Decision, Reason, SigningMode, approov_status

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
    verdict, token_steps = verifier.trace(Credentials((raw,), binding_value), mode)
    signing_steps: tuple[Step, ...] = ()
    if signing is not None:
        verdict, signing_steps = signing.signatures.trace(verdict, signing.request, signing.mode)
    steps = {step.rule: step for step in token_steps}
    lines = _token_lines(
        raw, steps, verdict=verdict, keys=keys, now=now, binding_value=binding_value
    )
    if signing is not None and signing.mode is not SigningMode.OFF:
        lines += _signature_lines(verdict, signing, signing_steps, now)
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


def _refused(step: Step | None) -> str:
    """` REJECTED: reason` when `step` failed; else nothing."""
    return f" REJECTED: {step.reason}" if step is not None and step.reason is not None else ""


def _token_lines(
    raw: bytes,
    steps: Mapping[str, Step],
    *,
    verdict: Verdict,
    keys: KeySet,
    now: float,
    binding_value: bytes | None,
) -> list[tuple[str, str]]:
    """A line per rule of the token (verify.RULES) as the verifier ran it, beside what the
    token says, decoded without trusting it."""
    lines = [("size", f"{len(raw)} bytes (limit {MAX_TOKEN_BYTES}){_refused(steps.get('size'))}")]
    for rule in ("token", "keys"):
        if _refused(steps.get(rule)):
            lines.append((rule, _refused(steps[rule]).strip()))
    if "structure" not in steps:
        return lines
    try:
        parsed = parse_compact_jws(raw)
    except Malformed as error:
        lines.append(("structure", f"REJECTED: {error}"))
        return lines
    header, claims = parsed.header, parsed.claims
    lines += [
        ("structure", "ok: three base64url segments, UTF-8 JSON objects"),
        ("header", f"{json.dumps(header)} {UNTRUSTED}{_refused(steps.get('header'))}"),
        ("claims", f"{json.dumps(claims)} {UNTRUSTED}{_refused(steps.get('claims'))}"),
        ("algorithm", _algorithm(header, keys, steps.get("algorithm"))),
    ]
    if _refused(steps.get("kid")):
        lines.append(
            ("kid", f"{header.get('kid')!r} names no configured key{_refused(steps['kid'])}")
        )
    lines.append(("signature", _signature(verdict, steps.get("signature"))))
    for name in ("exp", "nbf"):
        facts = _time_claim(claims, name, now, required=name == "exp")
        step = steps.get(name)
        lines.append((name, f"{_refused(step).strip()}; {facts}" if _refused(step) else facts))
    lines.append(("binding", _binding(claims, binding_value, steps.get("binding"))))
    return lines


def _algorithm(header: dict[str, Any], keys: KeySet, step: Step | None) -> str:
    configured = ", ".join(sorted(keys.algorithms)) or "none"
    verdict = "NOT allowed" if _refused(step) else "allowed" if step else "not checked"
    kid = f", kid {header['kid']!r}" if "kid" in header else ""
    return f"{header.get('alg')!r} {verdict} (the configured keys allow: {configured}){kid}"


def _signature(verdict: Verdict, step: Step | None) -> str:
    if step is None:
        return "not checked"
    if step.reason is not None:
        return f"not verified ({step.reason})"
    return f"ok, verified with key {verdict.key!r}"


def _time_claim(claims: Mapping[str, Any], name: str, now: float, *, required: bool) -> str:
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


def _binding(claims: Mapping[str, Any], binding_value: bytes | None, step: Step | None) -> str:
    if step is None:
        return "not checked (an earlier check failed)"
    pay = claims.get("pay")
    expected = binding_pay(binding_value) if binding_value is not None else None
    if step.reason is Reason.BINDING_MISSING:
        return "MISSING: the token has no pay claim"
    if step.reason is Reason.BINDING_HEADER_MISSING:
        return f"pay {pay!r}; pass --binding '<Authorization value>' to compare"
    if step.reason is not None:
        gives = f", but the binding value gives {expected!r}" if expected is not None else ""
        return f"MISMATCH: pay {pay!r}{gives} ({step.reason})"
    if step.detail is BindingMode.OFF:
        return "not checked (policy: binding off)"
    if "pay" not in claims:
        return "no pay claim (allowed)"
    return f"ok: pay {expected!r} = base64(sha256(binding value))"


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


def _signature_lines(
    verdict: Verdict, signing: Signing, steps: tuple[Step, ...], now: float
) -> list[tuple[str, str]]:
    """A line per rule of the message signature (signing.RULES) as the signing stage ran it:
    the key the token names, what was signed and when, the rebuilt base."""
    if not steps:
        return [("message", "not checked: the token did not pass its own checks")]
    claims = verdict.claims or {}
    lines: list[tuple[str, str]] = []
    for step in steps:
        lines += _SIGNATURE_STEP[step.rule](step, claims, signing, now)
    if len(steps) == 1 and steps[0].reason is None:  # the token names no key: nothing signed
        lines.append(("key", f"not signed: {_no_key(claims)}"))
    return lines


def _no_key(claims: Mapping[str, Any]) -> str:
    mskid = claims.get("mskid")
    if mskid is None:
        return "the token has neither ipk nor mskid"
    return (
        f"mskid {mskid!r}, but no account key is configured"
        " (APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET)"
    )


def _key_lines(
    step: Step, claims: Mapping[str, Any], signing: Signing, now: float
) -> list[tuple[str, str]]:
    ipk, mskid = claims.get("ipk"), claims.get("mskid")
    if step.reason is Reason.IPK_MISSING:
        return [("key", f"MISSING (policy: signing {signing.mode}): {_no_key(claims)}")]
    if ipk is not None:
        valid = step.reason is None
        return [("ipk", "ok: an EC P-256 public key" if valid else "INVALID: not a P-256 key")]
    if mskid is None or not signing.signatures.account_key_configured:
        return []
    key_id = signing.signatures.account_key_id
    if step.reason is Reason.MSKID_MISMATCH:
        return [("mskid", f"MISMATCH: {mskid!r}, the configured key id is {key_id!r}")]
    named = "names the configured account key" if key_id else "any key id is accepted"
    return [("mskid", f"{mskid!r}: {named}; the account signature is checked")]


def _input_lines(
    step: Step, claims: Mapping[str, Any], signing: Signing, now: float
) -> list[tuple[str, str]]:
    label = step.detail
    lines = [("label", f"{label}: the signature checked")]
    fields = signing.request.fields
    if not fields.get("signature-input") or not fields.get("signature"):
        return [
            *lines,
            (
                "signature-input",
                "MISSING: pass --header 'Signature-Input: ...' and --header 'Signature: ...'",
            ),
        ]
    signature_input = b", ".join(fields["signature-input"]).decode("latin-1")
    lines.append(("signature-input", signature_input + _refused(step)))
    if step.reason is Reason.MESSAGE_SIGNATURE_MISSING:
        lines.append(("signature", f"MISSING: no member labelled {label!r}"))
    return lines


def _parameter_lines(
    step: Step, claims: Mapping[str, Any], signing: Signing, now: float
) -> list[tuple[str, str]]:
    parameters = cast(Mapping[str, Any], step.detail)
    lines = [
        (name, _time_claim(parameters, name, now, required=False))
        for name in ("created", "expires")
        if name in parameters
    ]
    return [*lines, ("parameters", _refused(step).strip())] if _refused(step) else lines


def _base_lines(
    step: Step, claims: Mapping[str, Any], signing: Signing, now: float
) -> list[tuple[str, str]]:
    if step.reason is None:
        return []  # the base is shown with the signature it was verified against
    covered = cast(tuple[str, ...], step.detail)
    fields = signing.request.fields
    absent = [name for name in covered if not name.startswith("@") and name not in fields]
    hint = f"; pass --header for {', '.join(absent)}" if absent else ""
    return [("base", f"NOT REBUILT: {step.reason}{hint}")]


def _verified_lines(
    step: Step, claims: Mapping[str, Any], signing: Signing, now: float
) -> list[tuple[str, str]]:
    base = cast(bytes, step.detail).decode("latin-1").split("\n")
    lines = [("base" if index == 0 else "", line) for index, line in enumerate(base)]
    return [*lines, ("verified", _refused(step).strip() or "ok: the signature is the key's")]


def _refusal_line(
    step: Step, claims: Mapping[str, Any], signing: Signing, now: float
) -> list[tuple[str, str]]:
    return [(step.rule, _refused(step).strip())] if _refused(step) else []


_SIGNATURE_STEP: Mapping[
    str, Callable[[Step, Mapping[str, Any], Signing, float], list[tuple[str, str]]]
] = {
    "key": _key_lines,
    "signature-input": _input_lines,
    "parameters": _parameter_lines,
    "coverage": _refusal_line,
    "base": _base_lines,
    "signature": _verified_lines,
    "digest": _refusal_line,
}
