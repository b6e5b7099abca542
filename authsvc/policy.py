"""The policy vocabulary every layer speaks: how a route checks binding and signatures
(BindingMode, SigningMode), why a check ended as it did (Reason), and what was done about it
(Decision). Imports nothing of authsvc: settings, the check, logs and metrics all build on it."""

from __future__ import annotations

from enum import StrEnum


class BindingMode(StrEnum):
    """How the token's `pay` claim is checked against the binding header(s)."""

    REQUIRED = "required"
    IF_PRESENT = "if-present"
    OFF = "off"


class SigningMode(StrEnum):
    """How a token's `ipk` claim and the request's `install` message signature are checked."""

    REQUIRED = "required"
    """The token must carry `ipk` and the request a valid signature."""
    IF_PRESENT = "if-present"
    """A token with `ipk` needs a valid signature; one without is judged on its own."""
    OFF = "off"


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
    IPK_INVALID = "ipk_invalid"
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
    KEYS_UNAVAILABLE = "keys_unavailable"
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
    {Reason.KEYS_UNAVAILABLE, Reason.INTERNAL_ERROR, Reason.MESSAGE_TARGET_UNKNOWN}
)


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    MONITOR = "monitor"
    """The check failed, but its abort setting is off or its route is monitored: allowed and
    logged."""
