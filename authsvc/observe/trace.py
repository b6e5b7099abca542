"""The ids that tie a check to other systems' records, read from its headers for the log:
Approov's id of the token fetch (`Approov-TraceID`) and the W3C trace (`traceparent`). A value
that is not such an id is left out, never logged as sent."""

from __future__ import annotations

import re

APPROOV_TRACE_HEADER = b"approov-traceid"
TRACEPARENT_HEADER = b"traceparent"
MAX_APPROOV_TRACE_ID_CHARS = 128
# base64url (hex is a part of it), padded or not.
_APPROOV_TRACE_ID = re.compile(rb"[A-Za-z0-9_-]+={0,2}")
# W3C Trace Context: version-trace_id-parent_id-flags, lower-case hex; a later version may
# append fields, version 00 may not, and ff is no version.
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?", re.S)
_ZEROS = re.compile(rb"0+")


def approov_trace_id(value: bytes | None) -> str | None:
    """The Approov-TraceID value when it is 1 to 128 characters of base64url or hex."""
    if value is None:
        return None
    value = value.strip(b" \t")
    if len(value) > MAX_APPROOV_TRACE_ID_CHARS or not _APPROOV_TRACE_ID.fullmatch(value):
        return None
    return value.decode("ascii")


def w3c_trace_id(traceparent: bytes | None) -> str | None:
    """The trace id of a well-formed `traceparent`."""
    if traceparent is None:
        return None
    parts = _TRACEPARENT.fullmatch(traceparent.strip(b" \t"))
    if parts is None:
        return None
    version, trace_id, parent_id, more = parts.groups()
    if version == b"ff" or (version == b"00" and more) or _ZEROS.fullmatch(trace_id):
        return None
    if _ZEROS.fullmatch(parent_id):
        return None
    return trace_id.decode("ascii")
