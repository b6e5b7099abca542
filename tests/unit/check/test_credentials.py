"""Reading the token and binding headers from a raw ASGI header list."""

from __future__ import annotations

from authsvc.check.credentials import CredentialReader, Credentials

READER = CredentialReader("Approov-Token", ["Authorization"], "")
TWO_HEADERS = CredentialReader("Approov-Token", ["Authorization", "X-Session"], "")


def test_token_and_binding_are_read_as_raw_bytes() -> None:
    headers = [(b"approov-token", b"t"), (b"authorization", b"Bearer \xe9"), (b"other", b"x")]
    assert READER.read(headers) == Credentials((b"t",), b"Bearer \xe9")


def test_every_copy_of_the_token_header_is_kept() -> None:
    headers = [(b"approov-token", b"a"), (b"approov-token", b"")]
    assert READER.read(headers).tokens == (b"a", b"")


def test_several_binding_headers_are_concatenated_in_configured_order_without_separator() -> None:
    headers = [(b"x-session", b"S"), (b"authorization", b"A")]
    assert TWO_HEADERS.read(headers).binding_value == b"AS"


def test_binding_value_is_absent_when_any_binding_header_is_absent() -> None:
    assert TWO_HEADERS.read([(b"authorization", b"A")]).binding_value is None


def test_empty_binding_header_counts_as_absent() -> None:
    assert READER.read([(b"authorization", b"")]).binding_value is None


def test_same_binding_value_twice_is_one_value() -> None:
    credentials = READER.read([(b"authorization", b"A"), (b"authorization", b"A")])
    assert (credentials.binding_value, credentials.binding_conflict) == (b"A", False)


def test_binding_header_twice_with_different_values_is_a_conflict() -> None:
    assert READER.read([(b"authorization", b"A"), (b"authorization", b"B")]).binding_conflict


def test_configured_header_names_match_case_insensitively() -> None:
    reader = CredentialReader("APPROOV-TOKEN", ["AUTHORIZATION"], "")
    assert reader.read([(b"approov-token", b"t"), (b"authorization", b"a")]).binding_value == b"a"
