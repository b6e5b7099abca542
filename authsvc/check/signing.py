"""Approov message signing: the app's signature (RFC 9421) over the client's request, verified
with the key its token names.

Two signatures, one pair of headers (`Signature-Input`, `Signature`), the SDKs send either or
both: `install`, `ecdsa-p256-sha256` (raw r‖s) with the public key the token carries in `ipk`;
and `account`, `hmac-sha256` with the account's message signing key, which the token names in
`mskid`. A token with `ipk` needs `install` (an `account` beside it is neither needed nor an
error); one with `mskid` and no `ipk` needs `account`, when the account key is configured.

Pure, like authsvc.check.verify: no HTTP, no environment. It runs after the token's own checks
and reads what the proxy said of the client's request (authsvc.check.origin builds the
`ClientRequest`). What authsvc accepts is what Approov's SDKs send and Approov's own backend
verifiers accept: `created` required and `expires` optional, and a `Signature` member as a byte
sequence (RFC form) or a string (the OkHttp service from 3.5.2 to 3.5.7).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, cast

import http_sf
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from authsvc.check.message import ClientRequest, split_url
from authsvc.check.rules import Begin, Refused, Step, Trail, unheard
from authsvc.check.verify import Verdict
from authsvc.policy import Decision, Reason, SigningMode

LABEL = "install"
ALGORITHM = "ecdsa-p256-sha256"
ACCOUNT_LABEL = "account"
ACCOUNT_ALGORITHM = "hmac-sha256"
# What a signature must cover (with the token header): otherwise it proves nothing about the
# request it came with, and could be lifted onto another one.
REQUIRED_COMPONENTS = ("@method", "@target-uri")
# Approov's own verifiers accept these parameters and refuse any other.
PARAMETERS = frozenset({"alg", "created", "expires", "keyid", "nonce", "tag"})
# RFC 9530 digests the SDKs compute.
DIGEST_ALGORITHMS: Mapping[str, Callable[[bytes], Any]] = {
    "sha-256": hashlib.sha256,
    "sha-512": hashlib.sha512,
}
CONTENT_DIGEST = "content-digest"
MAX_SIGNATURE_FIELD_BYTES = 8192
_RAW_SIGNATURE_BYTES = 64  # r‖s, 32 bytes each
_HMAC_SHA256_BYTES = 32
# The order of P-256: (r, s) and (r, n - s) verify alike, so a replay key uses the low s.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
REPLAY_KEY_PREFIX = "authsvc:replay:"
# The signature's rules, in the order they run (each reports its step under this name).
RULES = ("key", "signature-input", "parameters", "coverage", "base", "signature", "digest")
_IPK_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class _Signature:
    components: tuple[str, ...]
    parameters: Mapping[str, Any]
    params_text: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class _Scheme:
    """A signature label, its algorithm, its value's length, and how it verifies."""

    label: str
    algorithm: str
    value_bytes: int
    verifies: Callable[[Any, bytes, bytes], bool]
    """(key, raw signature value, signature base) -> whether the value is the key's."""


def hmac_sha256_verifies(key: bytes, value: bytes, base: bytes) -> bool:
    """RFC 9421 3.3.3 hmac-sha256, compared in constant time."""
    return hmac.compare_digest(hmac.new(key, base, hashlib.sha256).digest(), value)


def ecdsa_p256_verifies(
    public_key: ec.EllipticCurvePublicKey, raw_signature: bytes, base: bytes
) -> bool:
    """RFC 9421 3.3.4 ecdsa-p256-sha256: `raw_signature` is r‖s, 32 bytes each."""
    half = len(raw_signature) // 2
    der = encode_dss_signature(
        int.from_bytes(raw_signature[:half]), int.from_bytes(raw_signature[half:])
    )
    try:
        public_key.verify(der, base, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


INSTALL = _Scheme(LABEL, ALGORITHM, _RAW_SIGNATURE_BYTES, ecdsa_p256_verifies)
ACCOUNT = _Scheme(ACCOUNT_LABEL, ACCOUNT_ALGORITHM, _HMAC_SHA256_BYTES, hmac_sha256_verifies)


class MessageSignatures:
    """The second stage of a check: a token verdict, then the request's signature, `install`
    or `account` by what the token names."""

    def __init__(
        self,
        *,
        token_header: str,
        max_age_seconds: int,
        clock_skew_seconds: int = 0,
        abort_on_invalid_signature: bool = True,
        account_key: bytes | None = None,
        account_key_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._token_component = token_header.lower()
        self._required = frozenset((*REQUIRED_COMPONENTS, self._token_component))
        self._max_age = max_age_seconds
        self._skew = clock_skew_seconds
        self._abort = abort_on_invalid_signature
        self._account_key = account_key
        self._account_key_id = account_key_id
        self.clock = clock
        # An app installation signs many requests with one key: parse each `ipk` once.
        self._public_key = lru_cache(maxsize=_IPK_CACHE_SIZE)(load_ipk)

    @property
    def account_key_configured(self) -> bool:
        return self._account_key is not None

    @property
    def account_key_id(self) -> str | None:
        return self._account_key_id

    @staticmethod
    def applies(verdict: Verdict, mode: SigningMode) -> bool:
        """Whether a signature is to be checked: the policy asks, and the token passed."""
        return (
            mode is not SigningMode.OFF
            and verdict.reason is Reason.OK
            and verdict.claims is not None
        )

    def check(self, verdict: Verdict, message: ClientRequest, mode: SigningMode) -> Verdict:
        """`verdict` unless the token passed and its message signature does not."""
        return self._run(verdict, message, mode, unheard)

    def trace(
        self, verdict: Verdict, message: ClientRequest, mode: SigningMode
    ) -> tuple[Verdict, tuple[Step, ...]]:
        """The verdict, and the result of each rule that ran (none when the stage does not
        apply), for `authsvc explain`."""
        trail = Trail()
        checked = self._run(verdict, message, mode, trail.begin)
        return checked, trail.steps(checked.reason)

    def _run(
        self, verdict: Verdict, message: ClientRequest, mode: SigningMode, begin: Begin
    ) -> Verdict:
        claims = verdict.claims
        if claims is None or not self.applies(verdict, mode):  # `is None` again for mypy
            return verdict
        try:
            begin("key")
            scheme, key = self._scheme(claims)
            if scheme is None:
                if mode in (SigningMode.REQUIRED, SigningMode.SINGLE_USE):
                    raise Refused(Reason.IPK_MISSING)
                return verdict
            signature = self._verify(scheme, key, message, begin)
        except Refused as refused:
            return self.refused(verdict, refused.reason)
        replay = self._replay(scheme, signature) if mode is SigningMode.SINGLE_USE else None
        return replace(verdict, signed_by=scheme.label, replay=replay)

    def refused(self, verdict: Verdict, reason: Reason) -> Verdict:
        """`verdict` refused for a signature failure (a replay included), as the abort
        setting says."""
        decision = Decision.DENY if self._abort or reason.always_denied else Decision.MONITOR
        # The claims stay for the log's sake, but nothing of them is forwarded on a failure.
        return replace(verdict, reason=reason, decision=decision, cached=False, replay=None)

    def _replay(self, scheme: _Scheme, signature: _Signature) -> tuple[str, int]:
        """The replay store's key of a signature, on what cannot be re-encoded (its raw
        value, as sf-binary or sf-string alike; an ECDSA s made low), and how long it must be
        kept: until the signature would be refused anyway (expired or stale), skew included."""
        value = signature.value
        if scheme is INSTALL:
            s = int.from_bytes(value[32:])
            value = value[:32] + min(s, _P256_ORDER - s).to_bytes(32)
        key = REPLAY_KEY_PREFIX + hashlib.sha256(scheme.label.encode() + b"|" + value).hexdigest()
        parameters = signature.parameters
        last_valid = parameters["created"] + self._max_age  # then stale
        if "expires" in parameters:
            last_valid = min(last_valid, parameters["expires"])
        ttl_ms = math.ceil((last_valid + self._skew - self.clock()) * 1000)
        return key, max(1, ttl_ms)

    def _scheme(self, claims: Mapping[str, Any]) -> tuple[_Scheme | None, Any]:
        """Which signature the token's claims call for, with its key; (None, None) when they
        name no key authsvc holds."""
        ipk = claims.get("ipk")
        if ipk is not None:
            public_key = self._public_key(ipk) if isinstance(ipk, str) else None
            if public_key is None:
                raise Refused(Reason.IPK_INVALID)
            return INSTALL, public_key
        mskid = claims.get("mskid")
        if mskid is None or self._account_key is None:
            return None, None
        if self._account_key_id is not None and mskid != self._account_key_id:
            raise Refused(Reason.MSKID_MISMATCH)
        return ACCOUNT, self._account_key

    def _verify(
        self, scheme: _Scheme, key: Any, message: ClientRequest, begin: Begin
    ) -> _Signature:
        begin("signature-input", scheme.label)
        signature = _labelled_signature(message.fields, scheme)
        begin("parameters", signature.parameters)
        self._check_parameters(signature.parameters, scheme.algorithm)
        begin("coverage")
        self._check_coverage(signature.components, message.fields)
        begin("base", signature.components)
        base = _signature_base(signature.components, signature.params_text, message)
        begin("signature", base)
        if not scheme.verifies(key, signature.value, base):
            raise Refused(Reason.MESSAGE_SIGNATURE_MISMATCH)
        if message.body is not None:
            begin("digest")
            _check_body_digest(message.body, message.fields)
        return signature

    def _check_parameters(self, parameters: Mapping[str, Any], algorithm: str) -> None:
        if parameters.get("alg") != algorithm:
            raise Refused(Reason.MESSAGE_ALG_NOT_ALLOWED)
        created = parameters.get("created")
        expires = parameters.get("expires", created)
        if (
            not PARAMETERS.issuperset(parameters)
            or any(
                type(parameters[name]) is not str  # a Token (unquoted) is not a String
                for name in ("alg", "keyid", "nonce", "tag")
                if name in parameters
            )
            or type(created) is not int
            or type(expires) is not int
            or expires < created
        ):
            raise Refused(Reason.MESSAGE_PARAMETERS_INVALID)
        now = self.clock()
        if created > now + self._skew:
            raise Refused(Reason.MESSAGE_SIGNATURE_NOT_YET_VALID)
        if created < now - self._max_age - self._skew:
            raise Refused(Reason.MESSAGE_SIGNATURE_STALE)
        if "expires" in parameters and expires <= now - self._skew:
            raise Refused(Reason.MESSAGE_SIGNATURE_EXPIRED)

    def _check_coverage(
        self, components: tuple[str, ...], fields: Mapping[str, tuple[bytes, ...]]
    ) -> None:
        covered = set(components)
        if not self._required <= covered:
            raise Refused(Reason.MESSAGE_COVERAGE_INSUFFICIENT)
        # The SDKs always cover the digest they add: an uncovered one was added or changed.
        if CONTENT_DIGEST in fields and CONTENT_DIGEST not in covered:
            raise Refused(Reason.MESSAGE_COVERAGE_INSUFFICIENT)


def _labelled_signature(fields: Mapping[str, tuple[bytes, ...]], scheme: _Scheme) -> _Signature:
    inputs, signatures = fields.get("signature-input"), fields.get("signature")
    if not inputs or not signatures:
        raise Refused(Reason.MESSAGE_SIGNATURE_MISSING)
    input_members = _dictionary(inputs)
    signature_members = _dictionary(signatures)
    label = scheme.label
    if label not in input_members and label not in signature_members:
        raise Refused(Reason.MESSAGE_SIGNATURE_MISSING)
    # Both fields name the same signatures, or one of them was added to or cut.
    if input_members.keys() != signature_members.keys():
        raise Refused(Reason.MESSAGE_SIGNATURE_MALFORMED)
    components, parameters, params_text = _signature_input(label, input_members[label])
    value = _raw_signature(signature_members[label][0], scheme.value_bytes)
    return _Signature(components, parameters, params_text, value)


def _signature_input(
    label: str, member: tuple[Any, Any]
) -> tuple[tuple[str, ...], Mapping[str, Any], bytes]:
    """The covered components, the parameters and `@signature-params` of a Signature-Input
    member."""
    inner, parameters = member
    if not isinstance(inner, list):
        raise Refused(Reason.MESSAGE_SIGNATURE_MALFORMED)
    components: list[str] = []
    for name, component_parameters in inner:
        if type(name) is not str or not name or name != name.lower() or name in components:
            raise Refused(Reason.MESSAGE_SIGNATURE_MALFORMED)
        if component_parameters or (name.startswith("@") and name not in _DERIVED):
            # `;sf`, `;key`, `;bs`, `;req`, `;tr`, `@query-param`, `@status`: not rebuilt here.
            raise Refused(Reason.MESSAGE_COMPONENT_UNSUPPORTED)
        components.append(name)
    # RFC 9421 3.2: the verifier serialises the parsed parameters again.
    params_text = http_sf.ser({label: member})[len(label) + 1 :].encode("ascii")
    return tuple(components), parameters, params_text


def signature_base(request: ClientRequest, label: str = LABEL) -> bytes:
    """The signature base RFC 9421 2.5 defines for `label`'s signature over `request`
    (for `authsvc explain` and the RFC's test vectors); raises ValueError if there is none."""
    try:
        member = _dictionary(request.fields.get("signature-input", ())).get(label)
        if member is None:
            raise ValueError(f"no signature labelled {label!r}")
        components, _parameters, params_text = _signature_input(label, member)
        return _signature_base(components, params_text, request)
    except Refused as refused:
        raise ValueError(refused.reason.value) from None


def _dictionary(lines: tuple[bytes, ...]) -> dict[str, Any]:
    """A structured-field dictionary from its field lines, joined as RFC 9651 says."""
    joined = b", ".join(lines)
    if len(joined) > MAX_SIGNATURE_FIELD_BYTES:
        raise Refused(Reason.MESSAGE_SIGNATURE_MALFORMED)

    def duplicate(key: str, context: str) -> None:
        # A label sent twice: the last would win, and proxies and backends might differ.
        if context == "dictionary":
            raise ValueError(key)

    try:
        parsed = http_sf.parse(joined, tltype="dictionary", on_duplicate_key=duplicate)
    except (ValueError, UnicodeError, http_sf.StructuredFieldError):
        raise Refused(Reason.MESSAGE_SIGNATURE_MALFORMED) from None
    return cast(dict[str, Any], parsed)


def _raw_signature(member: object, size: int) -> bytes:
    """The `size` bytes of a `Signature` member, a byte sequence or a base64 string."""
    if type(member) is bytes:
        raw = member
    elif type(member) is str:
        try:
            raw = base64.b64decode(member, validate=True)
        except (binascii.Error, ValueError):
            raise Refused(Reason.MESSAGE_SIGNATURE_MALFORMED) from None
    else:
        raise Refused(Reason.MESSAGE_SIGNATURE_MALFORMED)
    if len(raw) != size:
        raise Refused(Reason.MESSAGE_SIGNATURE_MALFORMED)
    return raw


def load_ipk(ipk: str) -> ec.EllipticCurvePublicKey | None:
    """The installation's P-256 public key: base64 of a DER SubjectPublicKeyInfo."""
    try:
        key = load_der_public_key(base64.b64decode(ipk, validate=True))
    except (binascii.Error, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        return None
    return key


def _split_target(target_uri: str) -> tuple[str, str, str]:
    parts = split_url(target_uri)
    if parts is None:
        raise Refused(Reason.MESSAGE_TARGET_UNKNOWN)
    return parts


def _request_target(target_uri: str) -> str:
    return _split_target(target_uri)[2] or "/"


def _path(target_uri: str) -> str:
    return _request_target(target_uri).partition("?")[0] or "/"


def _query(target_uri: str) -> str:
    return "?" + _request_target(target_uri).partition("?")[2]


# RFC 9421 2.2: each derived component from the method and the target URI.
_DERIVED: Mapping[str, Callable[[str, str], str]] = {
    "@method": lambda method, _uri: method,
    "@target-uri": lambda _method, uri: uri,
    "@authority": lambda _method, uri: _split_target(uri)[1].lower(),
    "@scheme": lambda _method, uri: _split_target(uri)[0].lower(),
    "@request-target": lambda _method, uri: _request_target(uri),
    "@path": lambda _method, uri: _path(uri),
    "@query": lambda _method, uri: _query(uri),
}


def _signature_base(
    components: tuple[str, ...], params_text: bytes, message: ClientRequest
) -> bytes:
    """RFC 9421 2.5: a line per covered component, then `@signature-params`."""
    lines = []
    for name in components:
        if name.startswith("@"):
            if message.method is None or message.target_uri is None:
                raise Refused(Reason.MESSAGE_TARGET_UNKNOWN)
            value = _DERIVED[name](message.method, message.target_uri).encode("latin-1")
        else:
            copies = message.fields.get(name)
            if not copies:  # RFC 9421 2.5: a covered field the message lacks is an error
                raise Refused(Reason.MESSAGE_COMPONENT_MISSING)
            value = b", ".join(copies)
        if b"\n" in value or b"\r" in value:
            raise Refused(Reason.MESSAGE_SIGNATURE_MALFORMED)
        lines.append(b'"%s": %s' % (name.encode("ascii"), value))
    lines.append(b'"@signature-params": ' + params_text)
    return b"\n".join(lines)


def _check_body_digest(body: bytes, fields: Mapping[str, tuple[bytes, ...]]) -> None:
    """The body the proxy forwarded against its covered Content-Digest (RFC 9530)."""
    lines = fields.get(CONTENT_DIGEST)
    if not lines:
        return  # a body the app did not digest: the SDKs digest only what they can
    try:
        members = _dictionary(lines)
    except Refused:
        raise Refused(Reason.CONTENT_DIGEST_MISMATCH) from None
    checked = False
    for algorithm, (value, _parameters) in members.items():
        digest = DIGEST_ALGORITHMS.get(algorithm)
        if digest is None:
            continue  # RFC 9530: an algorithm the recipient does not know is ignored
        # Some SDK versions send the digest as a string rather than a byte sequence.
        expected = digest(body).digest()
        received = value if type(value) is bytes else _base64_or_none(value)
        if received is None or not hmac.compare_digest(received, expected):
            raise Refused(Reason.CONTENT_DIGEST_MISMATCH)
        checked = True
    if not checked:
        raise Refused(Reason.CONTENT_DIGEST_MISMATCH)


def _base64_or_none(value: object) -> bytes | None:
    if type(value) is not str:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
