"""The policy vocabulary every layer speaks: how a route checks binding and signatures
(BindingMode, SigningMode), why a check ended as it did (Reason), what was done about it
(Decision), and what the app said of its own token fetch (approov_status). Imports nothing of
authsvc: settings, the check, logs and metrics all build on it."""

from __future__ import annotations

from enum import StrEnum


class BindingMode(StrEnum):
    """How the token's `pay` claim is checked against the binding header(s)."""

    REQUIRED = "required"
    IF_PRESENT = "if-present"
    OFF = "off"


class SigningMode(StrEnum):
    """How the request's message signature is checked: `install` with the key of the token's
    `ipk` claim, else `account` with the account's key when the token names it (`mskid`)."""

    REQUIRED = "required"
    """The token must name a key (`ipk`, or `mskid` with the account key configured) and the
    request carry a valid signature with it."""
    IF_PRESENT = "if-present"
    """A token that names a key needs a valid signature; one without is judged on its own."""
    OFF = "off"
    SINGLE_USE = "single-use"
    """All that REQUIRED checks, and the signature must not have been accepted before (by any
    replica sharing the replay store)."""


class Reason(StrEnum):
    """Why a request was allowed or denied."""

    OK = "ok"
    TOKEN_MISSING = "token_missing"
    TOKEN_DUPLICATED = "token_duplicated"
    TOKEN_TOO_LONG = "token_too_long"
    TOKEN_MALFORMED = "token_malformed"
    ALG_NOT_ALLOWED = "alg_not_allowed"
    KID_UNKNOWN = "kid_unknown"
    SIGNATURE_INVALID = "signature_invalid"
    CLAIMS_INVALID = "claims_invalid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BINDING_MISSING = "binding_missing"
    BINDING_HEADER_MISSING = "binding_header_missing"
    BINDING_HEADER_DUPLICATED = "binding_header_duplicated"
    BINDING_MISMATCH = "binding_mismatch"
    # Message signing (authsvc.check.signing), checked once the token passed.
    IPK_MISSING = "ipk_missing"
    """No key to verify a signature with: the token has no `ipk`, nor an `mskid` while the
    account's message signing key is configured."""
    IPK_INVALID = "ipk_invalid"
    MSKID_MISMATCH = "mskid_mismatch"
    """The token names another account signing key than APPROOV_ACCOUNT_MESSAGE_SIGNING_KEY_ID."""
    MESSAGE_SIGNATURE_MISSING = "message_signature_missing"
    MESSAGE_SIGNATURE_MALFORMED = "message_signature_malformed"
    MESSAGE_ALG_NOT_ALLOWED = "message_alg_not_allowed"
    MESSAGE_PARAMETERS_INVALID = "message_parameters_invalid"
    MESSAGE_COVERAGE_INSUFFICIENT = "message_coverage_insufficient"
    MESSAGE_COMPONENT_UNSUPPORTED = "message_component_unsupported"
    MESSAGE_COMPONENT_MISSING = "message_component_missing"
    MESSAGE_SIGNATURE_NOT_YET_VALID = "message_signature_not_yet_valid"
    MESSAGE_SIGNATURE_STALE = "message_signature_stale"
    MESSAGE_SIGNATURE_EXPIRED = "message_signature_expired"
    MESSAGE_SIGNATURE_MISMATCH = "message_signature_mismatch"
    CONTENT_DIGEST_MISMATCH = "content_digest_mismatch"
    MESSAGE_TARGET_UNKNOWN = "message_target_unknown"
    """The proxy did not say which URL the client asked for: its configuration, not the app."""
    MESSAGE_REPLAYED = "message_replayed"
    """A single-use signature accepted before."""
    REPLAY_STORE_UNAVAILABLE = "replay_store_unavailable"
    """The replay store is not configured, down, slow or refused: nothing could be decided."""
    KEYS_UNAVAILABLE = "keys_unavailable"
    ROUTE_UNKNOWN = "route_unknown"
    """The proxy named a check policy outside the route grammar (Envoy gRPC's `approov-route`):
    its configuration, not the app."""
    INTERNAL_ERROR = "internal_error"

    @property
    def is_binding_failure(self) -> bool:
        return self in _BINDING_FAILURES

    @property
    def always_denied(self) -> bool:
        """Nothing about the request could be decided: no monitor setting lets it through."""
        return self in _ALWAYS_DENIED


_BINDING_FAILURES = frozenset(
    {
        Reason.BINDING_MISSING,
        Reason.BINDING_HEADER_MISSING,
        Reason.BINDING_HEADER_DUPLICATED,
        Reason.BINDING_MISMATCH,
    }
)


# Failures no monitor setting lets through: nothing about the token could be decided.
_ALWAYS_DENIED = frozenset(
    {
        Reason.KEYS_UNAVAILABLE,
        Reason.ROUTE_UNKNOWN,
        Reason.INTERNAL_ERROR,
        Reason.MESSAGE_TARGET_UNKNOWN,
        Reason.REPLAY_STORE_UNAVAILABLE,
    }
)


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    MONITOR = "monitor"
    """The check failed, but its abort setting is off or its route is monitored: allowed and
    logged."""


# What the Approov SDKs report of their token fetch in `Approov-Status` (lower case), or as an
# upper-case name in the token header when they have no token. A bounded vocabulary: any other
# value is OTHER_STATUS. It explains a request, never changes its verdict.
APPROOV_STATUSES = frozenset(
    {
        "success",
        "no_approov_service",
        "no_network",
        "poor_network",
        "untrusted_network",
        "mitm_detected",
        "rejected",
        "internal_error",
        "bad_url",
        "no_network_permission",
        "missing_lib_dependency",
        "disabled",
        "unknown_key",
        "bad_key",
        "bad_payload",
    }
)
OTHER_STATUS = "other"
MAX_STATUS_NAME_BYTES = max(len(name) for name in APPROOV_STATUSES)
_STATUS_NAMES = {name.upper().encode(): name for name in APPROOV_STATUSES}
_STATUS_VALUES = {
    **{name.encode(): name for name in APPROOV_STATUSES},
    **_STATUS_NAMES,
}


def approov_status(value: bytes) -> str:
    """The status an `Approov-Status` value names (either case), else OTHER_STATUS."""
    return _STATUS_VALUES.get(value, OTHER_STATUS)


def status_in_token_header(value: bytes) -> str | None:
    """The status a token header carries instead of a token (the SDKs' upper-case names, e.g.
    `NO_NETWORK`), or None."""
    return _STATUS_NAMES.get(value)
