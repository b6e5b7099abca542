"""Property tests: for arbitrary input the verifier returns a verdict and the app allows or 401s."""

from __future__ import annotations

import asyncio
import base64
import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from authsvc.check.credentials import Credentials
from authsvc.check.verify import Verdict
from authsvc.config import Settings
from authsvc.observe.decisionlog import MAX_LINE_BYTES
from authsvc.policy import BindingMode, Reason
from authsvc.store.keysource import KeySource
from authsvc.tools.explain import explain
from tests.support.asgi import answer, dummy_app
from tests.support.signatures import ipk_token
from tests.support.tokens import DUMMY_SECRET, secret_verifier, sign

VERIFIER = secret_verifier(DUMMY_SECRET)
BASE64URL = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. ")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


jwt_shaped = st.one_of(
    st.binary(max_size=300),
    st.lists(BASE64URL, min_size=1, max_size=6).map(".".join).map(str.encode),
    st.tuples(st.binary(max_size=80), st.binary(max_size=80), st.binary(max_size=40)).map(
        lambda parts: ".".join(b64(p) for p in parts).encode()
    ),
    st.tuples(
        st.dictionaries(st.sampled_from(["alg", "typ", "kid", "crit", "b64"]), JSON_VALUES),
        st.dictionaries(st.sampled_from(["exp", "nbf", "pay", "did", "iss", "aud"]), JSON_VALUES),
    ).map(lambda hp: sign(json.dumps(hp[0]).encode(), json.dumps(hp[1]).encode()).encode()),
)


@settings(max_examples=400, deadline=None)
@given(
    tokens=st.lists(jwt_shaped, max_size=3),
    binding=st.none() | st.binary(max_size=50),
    conflict=st.booleans(),
    mode=st.sampled_from(BindingMode),
)
def test_verifier_returns_a_verdict_for_any_input_and_never_raises(
    tokens: list[bytes], binding: bytes | None, conflict: bool, mode: BindingMode
) -> None:
    verdict = VERIFIER.check(Credentials(tuple(tokens), binding, conflict), mode)
    assert isinstance(verdict, Verdict)
    assert verdict.reason is not Reason.INTERNAL_ERROR


HEADER_NAMES = st.sampled_from(
    [
        b"approov-token",
        b"authorization",
        b"x-original-uri",
        b"x-original-method",
        b"x-request-id",
        b"content-length",
        b"x-other",
    ]
)
APP = dummy_app()


@settings(max_examples=300, deadline=None)
@given(
    headers=st.lists(st.tuples(HEADER_NAMES, st.binary(max_size=200)), max_size=8),
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "FOO"]),
    path=st.sampled_from(["/auth", "/auth-binding-off", "/auth-binding-required"]),
)
def test_app_answers_allow_or_401_for_any_header_bytes(
    headers: list[tuple[bytes, bytes]], method: str, path: str
) -> None:
    got = asyncio.run(answer(APP, headers, method, path))
    assert got.status == 401
    assert got.reason not in {None, "ok", "internal_error"}


# --- whatever signature headers come with a token that carries an ipk: a deny, never a crash --

SIGNED_ROUTE = "/auth-binding-off-signing-required"
IPK_TOKEN = ipk_token(ttl=3600).encode()
COMPONENT_NAMES = st.sampled_from(
    [
        '"@method"',
        '"@target-uri"',
        '"approov-token"',
        '"@path"',
        '"@query"',
        '"@authority"',
        '"content-digest"',
        '"x"',
        '"@query-param";name="a"',
        '"A"',
        "@method",
        '""',
    ]
)
PARAMETERS = st.sampled_from(
    [
        'alg="ecdsa-p256-sha256"',
        "alg=ecdsa-p256-sha256",
        "created=1",
        "created=-1",
        "created=99999999999999999",
        "expires=0",
        'keyid="k"',
        "nonce=?1",
        "x=1",
        "created=1.5",
    ]
)
SIGNATURE_INPUTS = st.builds(
    lambda label, names, params: (
        f"{label}=({' '.join(names)})" + "".join(f";{p}" for p in params)
    ).encode(),
    st.sampled_from(["install", "other", "Install", "install=install"]),
    st.lists(COMPONENT_NAMES, max_size=5),
    st.lists(PARAMETERS, max_size=5),
)
SIGNATURES = st.sampled_from(
    [b"install=:" + base64.b64encode(bytes(n)) + b":" for n in (0, 1, 63, 64, 65)]
    + [b'install="' + base64.b64encode(bytes(64)) + b'"', b"install=1", b"install=(a)"]
)
SIGNING_FIELDS = st.one_of(
    st.tuples(st.just(b"signature-input"), SIGNATURE_INPUTS | st.binary(max_size=80)),
    st.tuples(st.just(b"signature"), SIGNATURES | st.binary(max_size=80)),
    st.tuples(
        st.sampled_from(
            [
                b"content-digest",
                b"x-original-uri",
                b"x-original-method",
                b"x-forwarded-host",
                b"x-forwarded-proto",
                b"x-forwarded-uri",
                b"content-length",
                b"host",
            ]
        ),
        st.binary(max_size=60) | st.sampled_from([b"/", b"https", b"a.io", b"sha-256=:AA==:"]),
    ),
)


@settings(max_examples=400, deadline=None)
@given(
    fields=st.lists(SIGNING_FIELDS, max_size=8),
    body=st.binary(max_size=40),
    appended=st.sampled_from(["", "/", "/x?y", "/%2F"]),
)
def test_any_signature_headers_are_refused_with_a_signing_reason_never_an_error(
    fields: list[tuple[bytes, bytes]], body: bytes, appended: str
) -> None:
    """No header, URL or body a client sends makes the signing stage fail: it denies."""
    headers = [(b"approov-token", IPK_TOKEN), *fields]
    got = asyncio.run(answer(APP, headers, "POST", SIGNED_ROUTE + appended, body=body))
    assert got.status == 401
    assert got.reason is not None
    assert got.reason.startswith(("message_", "content_digest")), got.reason


# --- whatever a validly signed token carries, the answer and the log line are sound ----------

ANY_CHARACTER = st.integers(0, 0x10FFFF).map(chr)  # lone surrogates included, as JSON allows
CLAIM_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**400), 10**400)
    | st.floats()
    | st.text(ANY_CHARACTER, max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
# exp reaches the most code (it is read after the signature, by the log and by explain): its
# edges first, then anything.
EDGE_TIMESTAMPS = st.sampled_from(
    [4_102_444_800, 10**400, -(10**400), 2**1024, 1e308, -1.5, 253402300800]
)
CLAIMS = st.fixed_dictionaries(
    {"exp": EDGE_TIMESTAMPS | CLAIM_VALUES},
    optional=dict.fromkeys(["nbf", "iat", "pay", "did", "iss", "aud", "ipk", "x"], CLAIM_VALUES),
)
HEADERS: st.SearchStrategy[dict[str, object]] = st.just({}) | st.dictionaries(
    st.sampled_from(["kid", "typ", "x"]), CLAIM_VALUES
)
LOG = io.StringIO()
LOGGED_APP = dummy_app(LOG)
KEYS = KeySource.from_settings(Settings(secret=DUMMY_SECRET))


@settings(max_examples=300, deadline=None)
@given(claims=CLAIMS, header=HEADERS)
def test_any_claim_values_get_allow_or_a_named_deny_and_a_sound_log_line(
    claims: dict[str, object], header: dict[str, object]
) -> None:
    """Found by a sweep: a claim the decision log could not format turned a deny into a 500."""
    token = sign({"alg": "HS256", **header}, json.dumps(claims).encode())
    before = LOG.tell()
    got = asyncio.run(answer(LOGGED_APP, [(b"approov-token", token.encode())]))
    assert got.status in {204, 401}
    assert got.reason not in {None, "internal_error"}
    line = LOG.getvalue()[before:]
    assert len(line.encode()) <= MAX_LINE_BYTES
    assert json.loads(line)["reason"] == got.reason
    explanation = explain(
        token, binding=None, mode=BindingMode.REQUIRED, verifier=VERIFIER, keys=KEYS.current, now=0
    )
    assert explanation.verdict.reason.value == got.reason
    explanation.render().encode("utf-8", "surrogateescape")
