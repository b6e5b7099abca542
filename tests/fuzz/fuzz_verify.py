"""Coverage-guided fuzzing of the verifier and the HTTP app (atheris/libFuzzer).

`make fuzz` runs it for a bounded time (FUZZ_SECONDS, default 60). Any input that makes the
verifier raise, or the app answer anything but 204/401, is a crash; so is anything but a
message signing refusal for fuzzed signature headers with a token that carries an `ipk`.
libFuzzer saves a crash as crash-* in tests/fuzz/crashes/, to be committed with the fix.
"""

from __future__ import annotations

import asyncio
import sys

import atheris

with atheris.instrument_imports():
    from authsvc.check.credentials import CredentialReader
    from authsvc.policy import BindingMode, Reason
    from tests.support.asgi import answer, dummy_app
    from tests.support.signatures import ipk_token
    from tests.support.tokens import bound_token, secret_verifier

VERIFIER = secret_verifier()
# The headers as the app reads them (whitespace around a value is not part of it).
READER = CredentialReader("Approov-Token", ("Authorization",), "")
APP = dummy_app()
MODES = list(BindingMode)
SEED = bound_token(b"Bearer fuzz", ttl=86400).encode()  # a day: a long fuzzing run
IPK_TOKEN = ipk_token(ttl=86400).encode()
SIGNING_HEADERS = (
    b"signature-input",
    b"signature",
    b"content-digest",
    b"x-original-uri",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"content-length",
)
SIGNATURE_INPUT_SEED = (
    b'install=("@method" "@target-uri" "approov-token");alg="ecdsa-p256-sha256";created=1'
)


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    if provider.ConsumeBool():
        signing_input(provider)
        return
    mode = MODES[provider.ConsumeIntInRange(0, len(MODES) - 1)]
    # Half the time mutate a valid token, so the fuzzer reaches the checks past the signature.
    if provider.ConsumeBool():
        token = bytearray(SEED)
        for _ in range(provider.ConsumeIntInRange(0, 4)):
            token[provider.ConsumeIntInRange(0, len(token) - 1)] = provider.ConsumeInt(1) & 0xFF
        token_bytes = bytes(token)
    else:
        token_bytes = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 600))
    binding = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 40))
    headers = [(b"approov-token", token_bytes), (b"authorization", binding)]
    verdict = VERIFIER.check(READER.read(headers), mode)
    if verdict.reason is Reason.INTERNAL_ERROR:
        raise RuntimeError("internal error")
    got = asyncio.run(answer(APP, headers, path=f"/auth-binding-{mode.value}"))
    if (got.status, got.reason) != (204 if verdict.allowed else 401, verdict.reason.value):
        raise RuntimeError(f"the app answered {got}, the verifier said {verdict.reason}")


def signing_input(provider: atheris.FuzzedDataProvider) -> None:
    """Fuzzed signature headers (a seed mutated, or raw bytes) and body on a signing route."""
    headers = [(b"approov-token", IPK_TOKEN), (b"x-original-method", b"POST")]
    for _ in range(provider.ConsumeIntInRange(0, 6)):
        name = SIGNING_HEADERS[provider.ConsumeIntInRange(0, len(SIGNING_HEADERS) - 1)]
        if name == b"signature-input" and provider.ConsumeBool():
            value = bytearray(SIGNATURE_INPUT_SEED)
            value[provider.ConsumeIntInRange(0, len(value) - 1)] = provider.ConsumeInt(1) & 0xFF
            headers.append((name, bytes(value)))
        else:
            headers.append((name, provider.ConsumeBytes(provider.ConsumeIntInRange(0, 120))))
    body = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 64))
    got = asyncio.run(answer(APP, headers, "POST", "/auth-binding-off-signing-required", body=body))
    if got.status != 401 or not (got.reason or "").startswith(("message_", "content_digest")):
        raise RuntimeError(f"a fuzzed signature got {got}")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
