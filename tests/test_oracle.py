"""Structured fuzzing: tokens built around valid ones; the verdict must match an oracle written
from the rules (README "What is verified"), not from the code."""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from authsvc.check.credentials import Credentials
from authsvc.policy import BindingMode
from tests.support.tokens import DUMMY_SECRET, OTHER_SECRET, b64url, pay_for, secret_verifier

NOW = time.time()
BINDING = b"Bearer oracle"
MISSING = object()
FORBIDDEN = {"crit", "b64", "jku", "x5u", "jwk", "x5c"}
VERIFIER = secret_verifier(DUMMY_SECRET)


@dataclass
class Built:
    token: bytes
    binding: bytes
    header: dict[str, Any]
    claims: dict[str, Any]
    signature_ok: bool
    well_formed: bool  # no padding, BOM or repeated key added


def is_time(value: Any) -> bool:
    return type(value) in (int, float) and -62135596800 <= value <= 253402300799


def oracle(built: Built) -> str:
    """The reason code the rules give, checked in the order the README lists them."""
    header, claims = built.header, built.claims
    now = time.time()
    if not built.well_formed:
        return "token_malformed"
    if header.get("alg") != "HS256":
        return "alg_not_allowed"
    if FORBIDDEN & header.keys() or not isinstance(header.get("kid", ""), str):
        return "token_malformed"
    if not built.signature_ok:
        return "signature_invalid"
    if not is_time(claims.get("exp")) or ("nbf" in claims and not is_time(claims["nbf"])):
        return "claims_invalid"
    if claims["exp"] <= now:
        return "expired"
    if "nbf" in claims and claims["nbf"] > now:
        return "not_yet_valid"
    if "pay" not in claims:
        return "binding_missing"
    return "ok" if claims["pay"] == pay_for(built.binding) else "binding_mismatch"


@st.composite
def tokens(draw: st.DrawFn) -> Built:
    header: dict[str, Any] = {
        "alg": draw(st.sampled_from(["HS256"] * 6 + ["HS384", "none", "RS256", "hs256", 1]))
    }
    for key in draw(
        st.sets(st.sampled_from(["typ", "kid", "cty", *sorted(FORBIDDEN)]), max_size=2)
    ):
        header[key] = draw(st.sampled_from(["JWT", "k1", 7, ["exp"], False]))
    binding = draw(st.sampled_from([BINDING, b"Bearer other", b"Bearer \xe9"]))
    claims: dict[str, Any] = {}
    exp = draw(
        st.sampled_from(
            [
                NOW + 3600,
                NOW + 3600.5,
                NOW - 10,
                "4000000000",
                True,
                None,
                MISSING,
                10**30,
                int(NOW) + 3600,
            ]
        )
    )
    if exp is not MISSING:
        claims["exp"] = exp
    nbf = draw(st.sampled_from([MISSING, MISSING, NOW - 10, NOW + 3600, "0", False]))
    if nbf is not MISSING:
        claims["nbf"] = nbf
    pay = draw(
        st.sampled_from(
            [pay_for(BINDING), pay_for(BINDING), MISSING, "x", 1, pay_for(BINDING).rstrip("=")]
        )
    )
    if pay is not MISSING:
        claims["pay"] = pay
    claims.update(
        draw(
            st.dictionaries(
                st.sampled_from(["did", "ip", "iat", "x"]),
                st.integers() | st.text(max_size=8),
                max_size=2,
            )
        )
    )
    header_json = json.dumps(header).encode()
    claims_json = json.dumps(claims).encode()
    tweak = draw(st.sampled_from([None] * 6 + ["pad", "bom", "repeat"]))
    if tweak == "bom":
        claims_json = b"\xef\xbb\xbf" + claims_json
    if tweak == "repeat":
        header_json = header_json[:-1] + b', "alg": "HS256"}'
    signing_input = b64url(header_json) + b"." + b64url(claims_json)
    secret = draw(st.sampled_from([DUMMY_SECRET] * 4 + [OTHER_SECRET]))
    signature = hmac.new(secret, signing_input, "sha256").digest()
    cut = draw(st.sampled_from([None] * 5 + ["truncate", "flip"]))
    if cut == "truncate":
        signature = signature[:16]
    if cut == "flip":
        signature = bytes([signature[0] ^ 0x80]) + signature[1:]
    token = signing_input + b"." + b64url(signature)
    if tweak == "pad":
        token += b"="
    return Built(
        token=token,
        binding=binding,
        header=header,
        claims=claims,
        signature_ok=secret == DUMMY_SECRET and cut is None,
        well_formed=tweak is None,
    )


@settings(max_examples=1500, deadline=None)
@given(built=tokens())
def test_the_verdict_of_any_built_token_is_the_independent_oracles(built: Built) -> None:
    verdict = VERIFIER.check(Credentials((built.token,), built.binding), BindingMode.REQUIRED)
    assert verdict.reason == oracle(built), built
