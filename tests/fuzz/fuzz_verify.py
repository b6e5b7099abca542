"""Coverage-guided fuzzing of the verifier and the HTTP app (atheris/libFuzzer).

`make fuzz` runs it for a bounded time (FUZZ_SECONDS, default 60). Any input that makes the
verifier raise, or the app answer anything but 204/401, is a crash; libFuzzer saves it as
crash-* in tests/fuzz/corpus/, to be committed with the fix.
"""

from __future__ import annotations

import asyncio
import sys

import atheris

with atheris.instrument_imports():
    from authsvc.credentials import Credentials
    from authsvc.verify import BindingMode, Reason
    from tests.asgi import answer, dummy_app
    from tests.tokens import bound_token, secret_verifier

VERIFIER = secret_verifier()
APP = dummy_app()
MODES = list(BindingMode)
SEED = bound_token(b"Bearer fuzz").encode()


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
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
    verdict = VERIFIER.check(Credentials((token_bytes,), binding or None), mode)
    if verdict.reason is Reason.INTERNAL_ERROR:
        raise RuntimeError("internal error")
    headers = [(b"approov-token", token_bytes), (b"authorization", binding)]
    got = asyncio.run(answer(APP, headers))
    if (got.status, got.reason) != (204 if verdict.allowed else 401, verdict.reason.value):
        raise RuntimeError(f"the app answered {got}, the verifier said {verdict.reason}")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
