"""`make bench-stages`: microseconds per request for each stage of `/auth`, in one process.

The HTTP layer is not in here (see `make bench`); everything after it is: reading the
credentials, verifying (a cache miss and a hit), the Prometheus writes (multiprocess mode, as
`authsvc serve` runs them), the decision line (written to a real file, one write per line),
and the whole app call (less the cost of calling an empty ASGI app the same way); what the
app call costs beyond those stages is Falcon's share. Then message signing, for an `install`
signature (ECDSA P-256 with the token's `ipk`) and an `account` one (HMAC-SHA256 with the
account key the token names in `mskid`): reading the client's request from the proxy's headers,
verifying the signature (structured fields, the signature base, the cryptography), and the
whole app call of a signed request.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

# prometheus_client picks its value store when first imported: set up as `authsvc serve` does.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="authsvc-stages-")

from authsvc.check.credentials import CredentialReader
from authsvc.check.origin import ClientRequestReader
from authsvc.check.verify import Verifier
from authsvc.config import DEFAULT_TOKEN_HEADER, Settings
from authsvc.http.app import Receive, Scope, Send, create_app
from authsvc.observe.decisionlog import DecisionLog
from authsvc.observe.metrics import Metrics
from authsvc.policy import BindingMode, SigningMode
from authsvc.runtime import Runtime
from authsvc.tools.devtoken import TEST_IPK, mint, sign_request
from tests.support.asgi import answer
from tests.support.tokens import DUMMY_SECRET

BINDING = b"Bearer bench-user"
ROUNDS = 20_000
ACCOUNT_KEY = bytes(range(32))  # a bench account message signing key
MSKID = "bench-account-key"


def per_call_us(function: Callable[[], object], rounds: int = ROUNDS) -> float:
    """The best of three runs of `rounds` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(rounds):
            function()
        best = min(best, (time.perf_counter() - started) / rounds)
    return best * 1e6


def main() -> None:
    settings = Settings(
        secret=DUMMY_SECRET, account_signing_key=ACCOUNT_KEY, account_signing_key_id=MSKID
    )
    runtime = Runtime.from_settings(settings)
    token = mint(DUMMY_SECRET, lifetime_seconds=3600, binding=BINDING.decode(), did="bench")
    # What nginx's include forwards: the client's headers plus its own.
    headers = [
        (b"host", b"authsvc"),
        (b"x-original-method", b"GET"),
        (b"x-original-uri", b"/api/v1/shapes?colour=red"),
        (b"x-request-id", b"0f7c2a9e5b1d4c3a8e6f0b2d4a6c8e0f"),
        (b"user-agent", b"okhttp/4.12.0"),
        (b"accept", b"application/json"),
        (b"accept-encoding", b"gzip"),
        (b"approov-token", token.encode()),
        (b"authorization", BINDING),
    ]
    reader = CredentialReader(
        settings.token_header, settings.binding_headers, settings.token_prefix
    )
    credentials = reader.read(headers)
    uncached = Verifier(runtime.keys)
    cached = runtime.verifier
    verdict = cached.check(credentials, BindingMode.REQUIRED)
    metrics = Metrics()
    with open(os.devnull, "w") as sink:
        log = DecisionLog(sink)
        app = create_app(runtime, metrics=metrics, decision_log=log)

        def record_line() -> None:
            log.record(
                verdict,
                binding="required",
                signing="off",
                method="GET",
                uri="/api/v1/shapes?colour=red",
                request_id="0f7c2a9e5b1d4c3a8e6f0b2d4a6c8e0f",
                latency_ms=0.1,
            )

        async def empty_app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        loop = asyncio.new_event_loop()
        harness = per_call_us(
            lambda: loop.run_until_complete(answer(empty_app, headers)), rounds=ROUNDS // 4
        )
        stages = {
            "read credentials": per_call_us(lambda: reader.read(headers)),
            "verify, cache miss": per_call_us(
                lambda: uncached.check(credentials, BindingMode.REQUIRED)
            ),
            "verify, cache hit": per_call_us(
                lambda: cached.check(credentials, BindingMode.REQUIRED)
            ),
            "metrics (3 writes)": per_call_us(lambda: metrics.record(verdict, 0.00005)),
            "decision line": per_call_us(record_line),
            "whole app call, hit": per_call_us(
                lambda: loop.run_until_complete(answer(app, headers)), rounds=ROUNDS // 4
            )
            - harness,
        }
        loop.close()
        signing = {
            **signing_stages(runtime, app, headers, "install"),
            **signing_stages(runtime, app, headers, "account"),
        }
    parts = ("read credentials", "verify, cache hit", "metrics (3 writes)", "decision line")
    stages["Falcon + ASGI (the rest)"] = stages["whole app call, hit"] - sum(
        stages[name] for name in parts
    )
    for name, micros in {**stages, **signing}.items():
        print(f"{name:<42}{micros:>8.1f} us")


def signing_stages(
    runtime: Runtime, app: Any, nginx_headers: list[tuple[bytes, bytes]], label: str
) -> dict[str, float]:
    """A GET signed as the SDKs sign it (method, URL, token, Authorization), through nginx,
    with `label`'s signature."""
    account = label == "account"
    token = mint(
        DUMMY_SECRET,
        lifetime_seconds=3600,
        binding=BINDING.decode(),
        ipk=None if account else TEST_IPK,
        mskid=MSKID if account else None,
    )
    url = "https://api.example.com/api/v1/shapes?colour=red"
    client = [("Approov-Token", token), ("Authorization", BINDING.decode())]
    added = sign_request(
        "GET",
        url,
        client,
        token_header=DEFAULT_TOKEN_HEADER,
        lifetime_seconds=600,
        account_key=ACCOUNT_KEY if account else None,
    )
    headers = [
        *((name, value) for name, value in nginx_headers if name != b"approov-token"),
        (b"approov-token", token.encode()),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"api.example.com"),
        *((name.lower().encode(), value.encode()) for name, value in added),
    ]
    reader = ClientRequestReader(None)
    client_request = reader.read(headers, method="GET", client_target=None, body=None)
    verdict = runtime.verifier.check(
        CredentialReader(DEFAULT_TOKEN_HEADER, ("Authorization",), "").read(headers),
        BindingMode.REQUIRED,
    )
    signatures = runtime.signatures
    checked = signatures.check(verdict, client_request, SigningMode.REQUIRED)
    if (checked.reason, checked.signed_by) != ("ok", label):
        raise SystemExit(f"bench-stages: the {label}-signed request is not allowed: {checked}")
    loop = asyncio.new_event_loop()
    path = "/auth-signing-required"
    whole = per_call_us(
        lambda: loop.run_until_complete(answer(app, headers, path=path)), rounds=ROUNDS // 4
    )
    plain = per_call_us(lambda: loop.run_until_complete(answer(app, headers)), rounds=ROUNDS // 4)
    loop.close()
    return {
        f"read client request (signing, {label})": per_call_us(
            lambda: reader.read(headers, method="GET", client_target=None, body=None)
        ),
        f"verify message signature ({label})": per_call_us(
            lambda: signatures.check(verdict, client_request, SigningMode.REQUIRED),
            rounds=ROUNDS // 4,
        ),
        f"whole app call, signed ({label}), hit": whole,
        f"signing's share of that call ({label})": whole - plain,
    }


if __name__ == "__main__":
    main()
