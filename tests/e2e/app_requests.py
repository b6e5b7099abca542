"""What an app sends through a proxy: its Approov token and the Authorization it is bound to."""

from __future__ import annotations

from typing import Any

from tests.support.tokens import bound_token

AUTHORIZATION = "Bearer user-session-1"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def approov(tok: str | None = None, authorization: str | None = AUTHORIZATION) -> dict[str, str]:
    """Headers of an app call: a token bound to `authorization` unless one is given."""
    headers = {"Approov-Token": tok if tok is not None else valid_token()}
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers


def valid_token(**claims: Any) -> str:
    return bound_token(AUTHORIZATION.encode(), **{"did": "device-42", **claims})
