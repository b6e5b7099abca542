"""authsvc.check.jose: a strict compact JWS taken apart, the same whichever way it is done."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authsvc.check import jose
from authsvc.check.jose import Malformed, parse_compact_jws
from tests.support.tokens import b64url, token

BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def standard_decoding(segment: bytes) -> bytes | None:
    """The rule as first written (the standard library's decoder, then its encoder again):
    the bytes, or None when the segment is not base64url or not its canonical spelling."""
    try:
        decoded = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    return decoded if base64.urlsafe_b64encode(decoded).rstrip(b"=") == segment else None


@settings(max_examples=2000, deadline=None)
@given(segment=st.text(alphabet=BASE64URL, min_size=1, max_size=12).map(str.encode))
def test_a_segment_decodes_as_the_standard_library_does_and_only_when_canonical(
    segment: bytes,
) -> None:
    """The last character's unused bits and the length are checked directly, not by encoding
    the result again: the outcome must be the same for every segment."""
    try:
        decoded: bytes | None = jose._decode_segment(segment, "payload")
    except Malformed:
        decoded = None
    assert decoded == standard_decoding(segment)


@pytest.mark.parametrize("segment", [b"QQ", b"QR", b"QUE", b"QUF", b"A", b"AAAAA", b"_w", b"__8"])
def test_the_edges_of_canonical_base64url(segment: bytes) -> None:
    """4n+1 characters never decode; `QR` and `QUF` carry stray bits (`QQ`, `QUE` do not)."""
    try:
        decoded: bytes | None = jose._decode_segment(segment, "header")
    except Malformed:
        decoded = None
    assert decoded == standard_decoding(segment)


def test_a_header_seen_before_is_the_callers_own_copy() -> None:
    first = parse_compact_jws(token().encode())
    first.header["alg"] = "none"
    first.header["jku"] = "https://attacker.example"
    again = parse_compact_jws(token().encode())
    assert again.header == {"alg": "HS256", "typ": "JWT"}


def test_a_malformed_header_is_refused_every_time_it_comes() -> None:
    bad = b64url(b'{"alg":"HS256","alg":"HS256"}') + b"." + token().encode().split(b".", 1)[1]
    for _ in range(2):
        with pytest.raises(Malformed, match="header"):
            parse_compact_jws(bad)


def test_the_headers_kept_stay_few_however_many_come(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jose, "_headers", {})
    payload_and_signature = token().encode().split(b".", 1)[1]
    for number in range(3 * jose._HEADERS_KEPT):
        header = b64url(b'{"alg":"HS256","kid":"%d"}' % number)
        assert parse_compact_jws(header + b"." + payload_and_signature).header["kid"] == str(number)
    assert len(jose._headers) <= jose._HEADERS_KEPT


def test_the_claim_names_of_every_token_are_one_string_each() -> None:
    """Each cached verdict holds its claims: their names are not a new string per token."""
    first, second = (parse_compact_jws(token().encode()).claims for _ in range(2))
    (exp_first,) = (name for name in first if name == "exp")
    (exp_second,) = (name for name in second if name == "exp")
    assert exp_first is exp_second


def reference_parse(raw: bytes) -> tuple[object, ...] | None:
    """The token taken apart by the rule as first written, without the header kept between
    tokens: None when malformed."""
    if not jose._COMPACT_JWS.fullmatch(raw):
        return None
    segments = raw.split(b".")
    decoded = [standard_decoding(segment) for segment in segments]
    if any(part is None for part in decoded):
        return None
    try:
        header, claims = (jose._decode_json_object(part, "x") for part in decoded[:2])  # type: ignore[arg-type]
    except Malformed:
        return None
    return header, claims, raw.rsplit(b".", 1)[0], decoded[2]


def outcome(raw: bytes) -> tuple[object, ...] | None:
    try:
        parsed = parse_compact_jws(raw)
    except Malformed:
        return None
    return parsed.header, parsed.claims, parsed.signing_input, parsed.signature


VALID = token(did="device").encode()
HEADERS = [b64url(b'{"alg":"HS256","typ":"JWT"}'), b64url(b'{"alg":"HS256","alg":"x"}'), b"QR"]


@settings(max_examples=1500, deadline=None)
@given(
    header=st.sampled_from(HEADERS),
    cut=st.integers(0, len(VALID)),
    inserted=st.text(alphabet=BASE64URL + ".=", max_size=3).map(str.encode),
)
def test_a_token_parses_alike_first_time_and_again_as_the_rule_first_written(
    header: bytes, cut: int, inserted: bytes
) -> None:
    """Malformed, forged and valid tokens (a valid one with characters put in anywhere, under
    a well-formed, a repeated-key or a stray-bit header): the same outcome as the reference,
    whether the header segment was seen before or not."""
    raw = header + b"." + VALID.split(b".", 1)[1]
    raw = raw[:cut] + inserted + raw[cut:]
    jose._headers.clear()
    expected = reference_parse(raw)
    assert outcome(raw) == expected
    assert outcome(raw) == expected  # the header now kept, if it was well-formed
