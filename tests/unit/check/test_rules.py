"""The rules report their steps (authsvc.check.rules): the steps run in the order RULES names,
and exactly the last one fails when, and only when, the check is refused, with the check's own
reason: so what `authsvc explain` renders of them cannot disagree with a check."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from authsvc.check import signing, verify
from authsvc.check.credentials import Credentials
from authsvc.check.message import ClientRequest
from authsvc.check.rules import Step
from authsvc.check.signing import MessageSignatures
from authsvc.check.verify import Verdict
from authsvc.policy import BindingMode, Reason, SigningMode
from authsvc.tools import explain
from tests.support.signatures import TEST_ACCOUNT_KEY, ipk_token, mskid_token, request, signed_post
from tests.support.signatures import sign as sign_message
from tests.support.tokens import OTHER_SECRET, bound_token, secret_verifier, sign, token

VERIFIER = secret_verifier()
SIGNATURES = MessageSignatures(
    token_header="Approov-Token", max_age_seconds=60, account_key=TEST_ACCOUNT_KEY
)

# Each case, and the rule that refuses it (None: none does).
TOKENS: dict[str, tuple[Callable[[], tuple[bytes, ...]], str | None]] = {
    "valid": (lambda: (bound_token().encode(),), None),
    "missing": (lambda: (), "token"),
    "duplicated": (lambda: (token().encode(), token().encode()), "token"),
    "too long": (lambda: (b"a" * 5000,), "size"),
    "malformed": (lambda: (b"abc.def",), "structure"),
    "alg RS256": (lambda: (sign({"alg": "RS256"}, {"exp": 1}).encode(),), "algorithm"),
    "crit header": (
        lambda: (sign({"alg": "HS256", "crit": ["x"]}, {"exp": 1}).encode(),),
        "header",
    ),
    "forged": (lambda: (token(secret=OTHER_SECRET).encode(),), "signature"),
    "exp a string": (lambda: (token(exp="soon").encode(),), "claims"),
    "expired": (lambda: (bound_token(ttl=-10).encode(),), "exp"),
    "not yet valid": (lambda: (bound_token(nbf=4_000_000_000).encode(),), "nbf"),
    "unbound": (lambda: (token().encode(),), "binding"),
    "bound to another value": (lambda: (bound_token(b"Bearer other").encode(),), "binding"),
}


def assert_reported_as_run(
    steps: tuple[Step, ...], rules: tuple[str, ...], verdict: Verdict, refused_by: str | None
) -> None:
    names = [step.rule for step in steps]
    assert names == sorted(names, key=rules.index), "steps out of RULES' order"
    failed = [step for step in steps if step.reason is not None]
    if verdict.reason is Reason.OK:
        assert failed == []
    else:
        assert failed == [steps[-1]]
        assert steps[-1].reason is verdict.reason
    assert (failed[0].rule if failed else None) == refused_by


@pytest.mark.parametrize("case", sorted(TOKENS))
def test_the_token_rules_report_each_step_and_only_the_last_fails(case: str) -> None:
    tokens, refused_by = TOKENS[case]
    credentials = Credentials(tokens(), b"Bearer abc")
    verdict, steps = VERIFIER.trace(credentials, BindingMode.REQUIRED)
    assert verdict == VERIFIER.check(credentials, BindingMode.REQUIRED)
    assert steps, "a check reports at least its first rule"
    assert_reported_as_run(steps, verify.RULES, verdict, refused_by)


def body_changed() -> tuple[str, ClientRequest]:
    forwarded = signed_post(b'{"n": 1}').as_forwarded(body=True)
    return ipk_token(), replace(forwarded, body=b'{"n": 2}')


def account_signed() -> tuple[str, ClientRequest]:
    minted = mskid_token()
    return minted, sign_message(request(token_value=minted), label="account").as_forwarded()


SIGNED: dict[str, tuple[Callable[[], tuple[str, ClientRequest]], str | None]] = {
    "install": (lambda: (ipk_token(), sign_message(request()).as_forwarded()), None),
    "account": (account_signed, None),
    "no key named": (lambda: (token(), request(token_value=token()).as_forwarded()), "key"),
    "unsigned": (lambda: (ipk_token(), request().as_forwarded()), "signature-input"),
    "stale": (
        lambda: (ipk_token(), sign_message(request(), created=1).as_forwarded()),
        "parameters",
    ),
    "only @method": (
        lambda: (ipk_token(), sign_message(request(), components=["@method"]).as_forwarded()),
        "coverage",
    ),
    "no url": (
        lambda: (ipk_token(), replace(sign_message(request()).as_forwarded(), target_uri=None)),
        "base",
    ),
    "another url": (
        lambda: (
            ipk_token(),
            replace(sign_message(request()).as_forwarded(), target_uri="https://b/"),
        ),
        "signature",
    ),
    "body changed": (body_changed, "digest"),
}


@pytest.mark.parametrize("case", sorted(SIGNED))
def test_the_signature_rules_report_each_step_and_only_the_last_fails(case: str) -> None:
    signed, refused_by = SIGNED[case]
    minted, message = signed()
    token_verdict = VERIFIER.check(Credentials((minted.encode(),), None), BindingMode.OFF)
    verdict, steps = SIGNATURES.trace(token_verdict, message, SigningMode.REQUIRED)
    assert verdict == SIGNATURES.check(token_verdict, message, SigningMode.REQUIRED)
    assert_reported_as_run(steps, signing.RULES, verdict, refused_by)


def test_explain_puts_every_signature_rule_into_words() -> None:
    assert set(explain._SIGNATURE_STEP) == set(signing.RULES)


FAILURE_WORDS = ("REJECTED", "NOT allowed", "not verified", "MISSING", "MISMATCH")


@pytest.mark.parametrize("case", sorted(name for name in TOKENS if name != "duplicated"))
def test_explain_shows_the_failing_rule_failed_on_its_own_line(case: str) -> None:
    tokens, refused_by = TOKENS[case]
    presented = tokens()
    explanation = explain.explain(
        presented[0].decode() if presented else "",
        binding="Bearer abc",
        mode=BindingMode.REQUIRED,
        verifier=VERIFIER,
        keys=VERIFIER.keys.current,
        now=time.time(),
    )
    failed = [label for label, text in explanation.lines if any(w in text for w in FAILURE_WORDS)]
    assert failed == ([] if refused_by is None else [refused_by]), explanation.render()
