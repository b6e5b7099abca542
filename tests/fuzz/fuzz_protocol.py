"""Coverage-guided fuzzing of the HTTP fast path's glue (CheckProtocol, atheris/libFuzzer).

Arbitrary bytes (seeded with real checks), cut into arbitrary reads, on one connection. A
crash is: a response llhttp's own response parser refuses, a write after the close, the app's
tasks never finishing, or a different sequence of answers than the same bytes in one read gives
(the connection's state then mixed two requests), or a check whose credentials came only in
its chunked body's trailer fields answered anything but `token_missing`.
`make fuzz FUZZ_TARGET=protocol` runs it; libFuzzer saves a crash in tests/fuzz/crashes/:
turn it into a case of tests/unit/http/test_protocol.py with the fix.
"""

from __future__ import annotations

import asyncio
import sys

import atheris

with atheris.instrument_imports():
    from tests.support.asgi import dummy_app
    from tests.support.protocol_harness import Connection, Response, parse_responses, split
    from tests.support.tokens import bound_token

APP = dummy_app()
CHECK = (
    b"GET /auth HTTP/1.1\r\nHost: a\r\nX-Request-ID: 1\r\nApproov-Token: %s\r\n"
    b"Authorization: Bearer abc\r\n\r\n" % bound_token(exp=2**40).encode()
)
# A check whose credentials are trailer fields (RFC 9110 6.5: never header fields), alone or
# queued behind an app route.
TRAILED = (
    b"POST /auth HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    b"Approov-Token: %s\r\nAuthorization: Bearer abc\r\n\r\n" % bound_token(exp=2**40).encode()
)
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
# What the fuzzed bytes follow: nothing, a valid check (into pipelining), or a trailed check.
PREFIXES = (b"", CHECK, TRAILED, HEALTH + TRAILED)


def answers(responses: list[Response]) -> list[tuple[int, bytes | None, bytes | None]]:
    return [
        (r.status, r.headers.get(b"x-approov-reason"), r.headers.get(b"x-request-id"))
        for r in responses
    ]


def served(pieces: list[bytes]) -> list[tuple[int, bytes | None, bytes | None]]:
    async def run() -> bytes:
        connection = Connection(APP)
        await connection.send(pieces)
        return connection.output

    return answers(parse_responses(asyncio.run(run())))


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    cuts = [provider.ConsumeIntInRange(0, 4096) for _ in range(provider.ConsumeIntInRange(0, 8))]
    prefix = PREFIXES[provider.ConsumeIntInRange(0, len(PREFIXES) - 1)]
    raw = prefix + provider.ConsumeBytes(4096)
    pieces = split(raw, cuts)
    whole = served([raw])
    assert served(pieces) == whole, (whole, pieces)
    if prefix.endswith(TRAILED):
        trailed = whole[prefix.count(b" HTTP/1.1\r\n") - 1]
        assert trailed[:2] == (401, b"token_missing"), whole


def main() -> None:
    atheris.Setup([*sys.argv, "-max_len=8192"], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
