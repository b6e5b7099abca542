"""The verification rules: a pure function of the presented credentials, the policy, the keys
and the clock.

No HTTP, no environment, no logging, no cache (authsvc.check.cache wraps a Verifier with one):
`Verifier.check` returns a `Verdict` whose `Reason` is the vocabulary that logs, metrics, the
deny header and the tests all speak. The token's structure is authsvc.check.jose's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from jwt.algorithms import Algorithm, get_default_algorithms

from authsvc.check.credentials import Credentials
from authsvc.check.jose import (
    ES256,
    HS256,
    RS256,
    Malformed,
    ParsedToken,
    check_header,
    parse_compact_jws,
)
from authsvc.check.rules import Begin, Refused, Step, Trail, unheard
from authsvc.policy import BindingMode, Decision, Reason

if TYPE_CHECKING:
    from authsvc.check.keys import KeyProvider, KeySet

MAX_TOKEN_BYTES = 4096
# The token's rules, in the order they run (each reports its step under this name).
RULES = (
    "token",
    "size",
    "keys",
    "structure",
    "algorithm",
    "header",
    "kid",
    "signature",
    "claims",
    "exp",
    "nbf",
    "binding",
)
# What a datetime can hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
EARLIEST_TIMESTAMP = -62135596800
LATEST_TIMESTAMP = 253402300799


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: Reason
    decision: Decision
    claims: Mapping[str, Any] | None = None
    """The token's claims, present only when its signature verified."""
    key: str | None = None
    """The label of the key that verified the signature."""
    cached: bool = False
    """Answered from the cache of allowed verdicts."""
    signed_by: str | None = None
    """The label of the message signature that verified (`install`, `account`), if any."""
    replay: tuple[str, int] | None = None
    """A single-use signature's claim, to make in the replay store before allowing: its key
    and how long to keep it (ms)."""

    @property
    def allowed(self) -> bool:
        return self.decision is not Decision.DENY

    def monitored(self) -> Verdict:
        """This verdict on a monitored route: a failure that monitor mode may let through is
        allowed as `monitor`, whatever the abort settings say."""
        if self.decision is Decision.DENY and not self.reason.always_denied:
            return replace(self, decision=Decision.MONITOR, cached=False)
        return self


class Checker(Protocol):
    """What the app asks of a verifier: a Verifier, or one with a cache in front."""

    @property
    def ready(self) -> bool: ...

    def check(self, credentials: Credentials, binding_mode: BindingMode) -> Verdict: ...

    def trace(
        self, credentials: Credentials, binding_mode: BindingMode
    ) -> tuple[Verdict, tuple[Step, ...]]: ...


class Verifier:
    """Checks Approov tokens against the keys of a KeyProvider; the rest fixed at construction."""

    def __init__(
        self,
        keys: KeyProvider,
        *,
        leeway_seconds: int = 0,
        issuer: str | None = None,
        audience: str | None = None,
        abort_on_invalid_token: bool = True,
        abort_on_invalid_binding: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.leeway_seconds = leeway_seconds
        self.clock = clock
        # PyJWT's algorithm objects, chosen once; which ones a token may use is the key set's call.
        self._algorithms: dict[str, Algorithm] = {
            name: get_default_algorithms()[name] for name in (HS256, RS256, ES256)
        }
        self._issuer = issuer
        self._audience = audience
        self._abort_on_invalid_token = abort_on_invalid_token
        self._abort_on_invalid_binding = abort_on_invalid_binding

    @property
    def ready(self) -> bool:
        """True once the keys to verify with are loaded."""
        return self.keys.ready

    def check(self, credentials: Credentials, binding_mode: BindingMode) -> Verdict:
        return self._run(credentials, binding_mode, unheard)

    def trace(
        self, credentials: Credentials, binding_mode: BindingMode
    ) -> tuple[Verdict, tuple[Step, ...]]:
        """The verdict, and the result of each rule (RULES) that ran, for `authsvc explain`."""
        trail = Trail()
        verdict = self._run(credentials, binding_mode, trail.begin)
        return verdict, trail.steps(verdict.reason)

    def _decide(self, reason: Reason) -> Decision:
        if reason is Reason.OK:
            return Decision.ALLOW
        if reason.always_denied:
            return Decision.DENY
        aborts = (
            self._abort_on_invalid_binding
            if reason.is_binding_failure
            else self._abort_on_invalid_token
        )
        return Decision.DENY if aborts else Decision.MONITOR

    def _run(self, credentials: Credentials, binding_mode: BindingMode, begin: Begin) -> Verdict:
        """The rules in order (RULES); the first that refuses names the verdict's reason."""
        try:
            token = self._token(credentials, begin)
            keys = self.keys.current  # one key set for the whole check, even if a refresh lands
            begin("keys")
            if not keys.keys:
                raise Refused(Reason.KEYS_UNAVAILABLE)
            begin("structure")
            try:
                parsed = parse_compact_jws(token)
            except Malformed:
                raise Refused(Reason.TOKEN_MALFORMED) from None
            key = self._signature(parsed, keys, begin)
        except Refused as refused:
            return Verdict(refused.reason, self._decide(refused.reason))
        claims = parsed.claims
        try:
            self._check_claims(claims, begin)
            self._check_binding(claims, credentials, binding_mode, begin)
        except Refused as refused:  # the signature verified: the claims are the token's
            return Verdict(refused.reason, self._decide(refused.reason), claims, key)
        return Verdict(Reason.OK, Decision.ALLOW, claims, key)

    @staticmethod
    def _token(credentials: Credentials, begin: Begin) -> bytes:
        """The one token presented, within its size."""
        begin("token")
        tokens = credentials.tokens
        if len(tokens) > 1:
            raise Refused(Reason.TOKEN_DUPLICATED)
        if not tokens or not tokens[0]:
            raise Refused(Reason.TOKEN_MISSING)
        if credentials.unprefixed:
            raise Refused(Reason.TOKEN_MALFORMED)
        token = tokens[0]
        begin("size")
        if len(token) > MAX_TOKEN_BYTES:
            raise Refused(Reason.TOKEN_TOO_LONG)
        return token

    def _signature(self, parsed: ParsedToken, keys: KeySet, begin: Begin) -> str:
        """The label of the key whose signature the token carries.

        PyJWT's algorithm layer does the cryptography (HMAC compared in constant time); the
        token was already parsed strictly, so it is not parsed a second time.
        """
        header = parsed.header
        algorithm = header.get("alg")
        begin("algorithm")
        if not isinstance(algorithm, str) or algorithm not in keys.algorithms:
            raise Refused(Reason.ALG_NOT_ALLOWED)
        begin("header")
        try:
            check_header(header)
        except Malformed:
            raise Refused(Reason.TOKEN_MALFORMED) from None
        begin("kid")
        candidates = keys.candidates(algorithm, header.get("kid"))
        if candidates is None:
            raise Refused(Reason.KID_UNKNOWN)
        begin("signature")
        implementation = self._algorithms[algorithm]
        for key in candidates:
            if implementation.verify(parsed.signing_input, key.material, parsed.signature):
                return key.label
        raise Refused(Reason.SIGNATURE_INVALID)

    def _check_claims(self, claims: Mapping[str, Any], begin: Begin) -> None:
        begin("claims")
        exp = claims.get("exp")
        nbf = claims.get("nbf", 0)
        if not (is_timestamp(exp) and is_timestamp(nbf)):
            raise Refused(Reason.CLAIMS_INVALID)
        if self._issuer is not None and claims.get("iss") != self._issuer:
            raise Refused(Reason.CLAIMS_INVALID)
        if self._audience is not None and not _audience_matches(claims.get("aud"), self._audience):
            raise Refused(Reason.CLAIMS_INVALID)
        now = self.clock()
        begin("exp")
        if exp <= now - self.leeway_seconds:
            raise Refused(Reason.EXPIRED)
        begin("nbf")
        if nbf > now + self.leeway_seconds:
            raise Refused(Reason.NOT_YET_VALID)

    @staticmethod
    def _check_binding(
        claims: Mapping[str, Any],
        credentials: Credentials,
        binding_mode: BindingMode,
        begin: Begin,
    ) -> None:
        begin("binding", binding_mode)
        if binding_mode is BindingMode.OFF:
            return
        if "pay" not in claims:
            if binding_mode is BindingMode.REQUIRED:
                raise Refused(Reason.BINDING_MISSING)
            return
        if credentials.binding_conflict:
            raise Refused(Reason.BINDING_HEADER_DUPLICATED)
        if credentials.binding_value is None:
            raise Refused(Reason.BINDING_HEADER_MISSING)
        pay = claims["pay"]
        # The expected value is ASCII; a non-ASCII `str` would make compare_digest raise.
        if not isinstance(pay, str) or not pay.isascii():
            raise Refused(Reason.BINDING_MISMATCH)
        expected = binding_pay(credentials.binding_value)
        if not hmac.compare_digest(pay.encode("ascii"), expected.encode("ascii")):
            raise Refused(Reason.BINDING_MISMATCH)


def binding_pay(binding_value: bytes) -> str:
    """The `pay` claim that binds a token to `binding_value`."""
    return base64.b64encode(hashlib.sha256(binding_value).digest()).decode("ascii")


def is_timestamp(value: object) -> TypeGuard[float]:
    """A JSON number a date can hold. Compared exactly: a huge int is never made a float."""
    # `type(...) in` on purpose: bool is an int subclass and must not pass. NaN and the
    # infinities fail the range test; a huge int is compared exactly, never made a float.
    return type(value) in (int, float) and EARLIEST_TIMESTAMP <= value <= LATEST_TIMESTAMP  # type: ignore[operator]


def _audience_matches(aud: object, audience: str) -> bool:
    if isinstance(aud, str):
        return aud == audience
    return isinstance(aud, list) and audience in aud
