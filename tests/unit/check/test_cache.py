"""The cache of allowed verdicts: the same credentials only, never past exp or old keys."""

from __future__ import annotations

from typing import Any

from authsvc.check.cache import CachingVerifier, VerdictMemo
from authsvc.check.credentials import Credentials
from authsvc.check.verify import Verdict, Verifier
from authsvc.policy import BindingMode, Decision, Reason
from tests.support.tokens import OTHER_SECRET, bound_token, secret_keys, token

BINDING = b"Bearer abc"
NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def verifier(clock: Clock, size: int = 100, **options: Any) -> CachingVerifier:
    return CachingVerifier(Verifier(secret_keys(), clock=clock, **options), size)


def check(
    v: CachingVerifier,
    tok: str,
    binding: bytes | None = BINDING,
    mode: BindingMode = BindingMode.REQUIRED,
) -> Verdict:
    return v.check(Credentials((tok.encode(),), binding), mode)


def test_the_same_credentials_are_answered_from_the_cache() -> None:
    v = verifier(Clock())
    tok = bound_token(BINDING, exp=NOW + 60)
    first, second = check(v, tok), check(v, tok)
    assert (first.reason, first.cached) == (Reason.OK, False)
    assert (second.reason, second.cached, second.claims) == (Reason.OK, True, first.claims)


def test_a_cached_allow_is_not_used_once_the_token_expires() -> None:
    clock = Clock()
    v = verifier(clock)
    tok = bound_token(BINDING, exp=NOW + 60)
    assert check(v, tok).reason is Reason.OK
    clock.now = NOW + 60
    assert (check(v, tok).reason, check(v, tok).cached) == (Reason.EXPIRED, False)


def test_leeway_applies_to_a_cached_allow_as_to_a_fresh_one() -> None:
    clock = Clock()
    v = verifier(clock, leeway_seconds=30)
    tok = bound_token(BINDING, exp=NOW + 10)
    check(v, tok)
    clock.now = NOW + 39
    assert check(v, tok).cached
    clock.now = NOW + 40
    assert check(v, tok).reason is Reason.EXPIRED


def test_another_binding_value_or_policy_is_not_a_hit() -> None:
    v = verifier(Clock())
    tok = bound_token(BINDING, exp=NOW + 60)
    check(v, tok)
    assert check(v, tok, b"Bearer other").reason is Reason.BINDING_MISMATCH
    assert not check(v, tok, mode=BindingMode.OFF).cached


def test_denials_are_never_cached() -> None:
    v = verifier(Clock())
    tok = bound_token(BINDING, exp=NOW + 60, secret=OTHER_SECRET)
    assert [check(v, tok).cached for _ in range(3)] == [False, False, False]


def test_monitor_allowances_are_never_cached() -> None:
    v = verifier(Clock(), abort_on_invalid_token=False)
    tok = token(exp=NOW - 1, pay="x")
    verdicts = [check(v, tok) for _ in range(2)]
    assert [(x.decision, x.cached) for x in verdicts] == [(Decision.MONITOR, False)] * 2


def test_repeated_token_headers_and_binding_conflicts_bypass_the_cache() -> None:
    v = verifier(Clock())
    tok = bound_token(BINDING, exp=NOW + 60).encode()
    v.check(Credentials((tok,), BINDING), BindingMode.REQUIRED)
    assert v.check(Credentials((tok, tok), BINDING), BindingMode.REQUIRED).reason is (
        Reason.TOKEN_DUPLICATED
    )
    conflict = Credentials((tok,), BINDING, binding_conflict=True)
    assert v.check(conflict, BindingMode.REQUIRED).reason is Reason.BINDING_HEADER_DUPLICATED


def test_new_keys_empty_the_cache() -> None:
    clock = Clock()
    source = secret_keys()
    v = CachingVerifier(Verifier(source, clock=clock), 10)
    tok = bound_token(BINDING, exp=NOW + 60)
    check(v, tok)
    assert check(v, tok).cached
    source.current = secret_keys(OTHER_SECRET).current
    assert check(v, tok).reason is Reason.SIGNATURE_INVALID


def test_the_cache_holds_at_most_its_size_least_recently_used_out() -> None:
    v = verifier(Clock(), size=2)
    a, b, c = (bound_token(BINDING, exp=NOW + 60, did=d) for d in "abc")
    check(v, a)
    check(v, b)
    check(v, a)  # a is now the most recent
    check(v, c)  # b goes
    assert check(v, a).cached
    assert not check(v, b).cached


def test_size_zero_turns_the_cache_off() -> None:
    v = verifier(Clock(), size=0)
    tok = bound_token(BINDING, exp=NOW + 60)
    assert [check(v, tok).cached for _ in range(2)] == [False, False]


class Derivations:
    """A derivation that counts its calls: what VerdictMemo must spare."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, verdict: Verdict) -> str:
        self.calls += 1
        return f"{verdict.reason}:{verdict.decision}:{verdict.cached}"


def test_the_memo_derives_a_cached_verdict_once_however_often_it_is_hit() -> None:
    v = verifier(Clock())
    derive = Derivations()
    memo = VerdictMemo(derive)
    tok = bound_token(BINDING, exp=NOW + 60)
    check(v, tok)
    assert {memo(check(v, tok)) for _ in range(5)} == {"ok:allow:True"}
    assert derive.calls == 1


def test_the_memo_derives_a_refusal_without_claims_once_per_value() -> None:
    """A flood of forged tokens: each check a new verdict object, all of one value."""
    derive = Derivations()
    memo = VerdictMemo(derive)
    results = [memo(Verdict(Reason.SIGNATURE_INVALID, Decision.DENY)) for _ in range(5)]
    results.append(memo(Verdict(Reason.SIGNATURE_INVALID, Decision.MONITOR)))
    assert results == ["signature_invalid:deny:False"] * 5 + ["signature_invalid:monitor:False"]
    assert derive.calls == 2


def test_the_memo_derives_a_new_verdict_with_claims_every_time() -> None:
    """A miss: its claims are its own (its did, its exp), so nothing of another is reused."""
    derive = Derivations()
    memo = VerdictMemo(derive)
    for did in ("a", "b"):
        memo(Verdict(Reason.OK, Decision.ALLOW, {"exp": NOW + 60, "did": did}, "secret"))
    assert derive.calls == 2


def test_the_memo_stays_within_its_size() -> None:
    memo = VerdictMemo(Derivations(), size=4)
    for reason in Reason:
        memo(Verdict(reason, Decision.DENY))
    assert len(memo._entries) <= 4
