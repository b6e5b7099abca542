"""`authsvc token` and `authsvc sign`: test tokens and signed test requests, safely.

`token` refuses a real secret unless told `--dev`: a token it signs would pass in production.
`sign` signs with Approov's published test installation key (the ASP.NET quickstart's),
whose `ipk` `token --ipk` puts in a token: no real app installation holds it; or, as `account`,
with an account message signing key it is given, for a token that names it (`token --mskid`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from typing import Any, cast

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_private_key

from authsvc.check.message import ClientRequest, fields_by_name
from authsvc.check.signing import ACCOUNT, INSTALL, signature_base
from authsvc.check.verify import binding_pay

# Approov's published test installation key pair (EC P-256): `ipk` is its public key as
# base64 DER SubjectPublicKeyInfo, as an Approov token carries it.
TEST_IPK = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJSm4DMcivAwvhM+KNce2C/X26cj3oGyUwWVUPuNuZHtd2qyVsM+0g7q"
    "X73Qh0Of6fn10AApLnl8vRQsvx94fZQ=="
)
_TEST_INSTALL_PRIVATE_KEY = (
    "MHcCAQEEIHWZ2Ueq6odQNG+aaYmEbp7C6nujYNGr7nYKK2jqQ2asoAoGCCqGSM49AwEHoUQDQgAEJSm4DMcivAwvhM+"
    "KNce2C/X26cj3oGyUwWVUPuNuZHtd2qyVsM+0g7qX73Qh0Of6fn10AApLnl8vRQsvx94fZQ=="
)
TEST_INSTALL_KEY = cast(
    ec.EllipticCurvePrivateKey,
    load_der_private_key(base64.b64decode(_TEST_INSTALL_PRIVATE_KEY), password=None),
)
# What the SDKs cover when the request has it, after method, URL and token; and the lifetime
# they give a signature.
_SDK_OPTIONAL_COMPONENTS = (
    "approov-traceid",
    "approov-status",
    "authorization",
    "content-type",
    "content-digest",
)
SDK_SIGNATURE_LIFETIME = 15

_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_LIFETIME_SECONDS = 7 * 86400


def parse_duration(text: str) -> int:
    """Seconds in "90", "90s", "5m", "2h" or "1d"; from 1 s to 7 days."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 2h or 1d")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not 1 <= seconds <= MAX_LIFETIME_SECONDS:
        raise ValueError(f"{text!r} is not between 1s and 7d")
    return seconds


def mint(
    secret: bytes,
    *,
    lifetime_seconds: int,
    binding: str | None = None,
    did: str | None = None,
    ipk: str | None = None,
    mskid: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 token shaped like Approov's: exp, and pay/did/ipk/mskid when asked for."""
    claims: dict[str, Any] = {"exp": int((now or time.time()) + lifetime_seconds)}
    if ipk is not None:
        claims["ipk"] = ipk
    if mskid is not None:
        claims["mskid"] = mskid
    if binding is not None:
        claims["pay"] = binding_pay(binding.encode("utf-8", "surrogateescape"))
    if did is not None:
        claims["did"] = did
    return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "JWT"})


def sign_request(
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    *,
    token_header: str,
    body: bytes | None = None,
    now: float | None = None,
    lifetime_seconds: int = SDK_SIGNATURE_LIFETIME,
    account_key: bytes | None = None,
) -> list[tuple[str, str]]:
    """The headers an Approov SDK would add to sign this request with the test installation
    key (or, as `account`, with `account_key`): Content-Digest when there is a body,
    Signature-Input and Signature. Covered as the SDKs do: method, URL, the token, and
    Approov-TraceID, Approov-Status, Authorization, Content-Type, Content-Digest when
    present."""
    scheme = INSTALL if account_key is None else ACCOUNT
    fields = fields_by_name((name.encode(), value.encode("latin-1")) for name, value in headers)
    added: list[tuple[str, str]] = []
    if body is not None:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        added.append(("Content-Digest", f"sha-256=:{digest}:"))
        fields["content-digest"] = (added[-1][1].encode(),)
    covered = ["@method", "@target-uri", token_header.lower()]
    covered += [name for name in _SDK_OPTIONAL_COMPONENTS if name in fields]
    created = int(now if now is not None else time.time())
    params = "(" + " ".join(f'"{name}"' for name in covered) + ")"
    params += f';alg="{scheme.algorithm}";created={created};expires={created + lifetime_seconds}'
    label = scheme.label
    request = ClientRequest(
        method,
        url,
        {**fields, "signature-input": (f"{label}={params}".encode(),)},
    )
    base = signature_base(request, label)
    if account_key is None:
        r, s = decode_dss_signature(TEST_INSTALL_KEY.sign(base, ec.ECDSA(hashes.SHA256())))
        value = r.to_bytes(32) + s.to_bytes(32)
    else:
        value = hmac.new(account_key, base, hashlib.sha256).digest()
    raw = base64.b64encode(value).decode()
    return [*added, ("Signature-Input", f"{label}={params}"), ("Signature", f"{label}=:{raw}:")]
