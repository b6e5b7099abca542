"""Requests shaped as each Approov SDK line sends them, through a real nginx, Envoy and Caddy
running their shipped files, in front of the real `authsvc serve` (with an account message
signing key) and a counting backend. Signed by an independent RFC 9421 signer
(tests.support.signatures: `http-message-signatures`, ECDSA for `install`, HMAC-SHA256 for
`account`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tests.e2e.app_requests import AUTHORIZATION
from tests.e2e.conftest import FRONT_DOORS, start_stack
from tests.e2e.servers import ProxiedStack, Reply
from tests.e2e.test_gateways import decision_for
from tests.e2e.test_message_signing import url
from tests.support.signatures import (
    APPROOV_TEST_IPK,
    SDK_COMPONENTS,
    TEST_ACCOUNT_KEY_B64URL,
    TEST_MSKID,
    Request,
    request,
    sign,
)
from tests.support.tokens import pay_for, token

pytestmark = pytest.mark.e2e

# okhttp 3.8's default coverage of a GET with Authorization, its trace id and its status.
COMPONENTS = (*SDK_COMPONENTS, "approov-traceid", "approov-status", "authorization")
TRACE_ID = "dGhlLXRva2VuLWZldGNo"


@pytest.fixture(scope="module")
def stack(gateway: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedStack]:
    """The shipped file of `gateway`, authsvc holding the account's message signing key."""
    env = {
        "APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET": TEST_ACCOUNT_KEY_B64URL,
        "APPROOV_ACCOUNT_MESSAGE_SIGNING_KEY_ID": TEST_MSKID,
    }
    running = start_stack(gateway, tmp_path_factory.mktemp(f"sdk-{gateway}"), env=env)
    yield running
    running.stop()


def sdk_request(
    stack: ProxiedStack,
    method: str,
    target: str,
    *,
    labels: Sequence[str],
    string_form: bool = False,
    body: bytes | None = None,
) -> Request:
    """A request to the shipped `/signed/` route as an SDK sends it: its token bound to its
    Authorization, naming the keys of `labels` (`ipk` for install, `mskid` for account), with
    its trace id and fetch status, signed with each label in turn."""
    claims: dict[str, Any] = {"pay": pay_for(AUTHORIZATION.encode())}
    if "install" in labels:
        claims["ipk"] = APPROOV_TEST_IPK
    if "account" in labels:
        claims["mskid"] = TEST_MSKID
    headers = [
        ("Authorization", AUTHORIZATION),
        ("Approov-TraceID", TRACE_ID),
        ("Approov-Status", "success"),
    ]
    message = request(method, url(stack, target), token_value=token(**claims), headers=headers)
    message.body = body
    if body is not None:
        message.headers["Content-Length"] = str(len(body))
    components = (*COMPONENTS, *(("content-length",) if body is not None else ()))
    for number, label in enumerate(labels):
        sign(
            message, label=label, components=components, string_form=string_form, append=number > 0
        )
    return message


def send(
    stack: ProxiedStack, message: Request, target: str | None = None, method: str | None = None
) -> Reply:
    path = target or message.url.split(str(stack.port), 1)[1]
    return stack.send(method or message.method, path, dict(message.headers.items()), message.body)


def allowed(stack: ProxiedStack, reply: Reply, target: str, signed_by: str) -> None:
    assert reply.status == 200, reply.body
    line = decision_for(stack, target)
    assert (line["reason"], line.get("signed_by")) == ("ok", signed_by)
    assert (line["approov_status"], line["approov_trace_id"]) == ("success", TRACE_ID)


def refused(stack: ProxiedStack, reply: Reply, before: int, target: str, reason: str) -> None:
    assert reply.status == 401, reply.body
    assert stack.backend_requests() == before, "a refused request reached the backend"
    assert decision_for(stack, target)["reason"] == reason


# --- signed requests: each SDK line's shape ---------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "string_form", "signed_by"),
    [
        (("account",), False, "account"),  # an account without installation keys
        (("account",), True, "account"),  # okhttp 3.5.2 to 3.5.7: the value as sf-string
        (("install",), False, "install"),  # urlsession, Flutter, net-httpclient
        (("install",), True, "install"),
        (("install", "account"), False, "install"),  # okhttp 3.7: both, every request
        (("install", "account"), True, "install"),
    ],
    ids=["account", "account-sf-string", "install", "install-sf-string", "both", "both-sf-string"],
)
def test_a_signed_get_as_each_sdk_line_sends_it_is_allowed(
    stack: ProxiedStack, labels: tuple[str, ...], string_form: bool, signed_by: str
) -> None:
    target = f"/signed/{'-'.join(labels)}/{int(string_form)}?q=1"
    message = sdk_request(stack, "GET", target, labels=labels, string_form=string_form)
    allowed(stack, send(stack, message), target.split("?", maxsplit=1)[0] + "?q=1", signed_by)


def test_an_account_signed_post_with_its_body_is_allowed(stack: ProxiedStack) -> None:
    target = "/signed/account-post"
    message = sdk_request(stack, "POST", target, labels=("account",), body=b'{"amount": 1}')
    reply = send(stack, message)
    allowed(stack, reply, target, "account")
    assert reply.json()["body_bytes"] == len(b'{"amount": 1}')


@pytest.mark.parametrize("change", ["method", "path", "status", "trace id"])
def test_an_account_signed_request_changed_after_signing_is_refused(
    stack: ProxiedStack, change: str
) -> None:
    target = f"/signed/changed-{change.replace(' ', '-')}"
    message = sdk_request(stack, "GET", target, labels=("account",))
    sent_to = target + "-other" if change == "path" else target
    if change == "status":
        message.headers["Approov-Status"] = "no_network"
    if change == "trace id":
        message.headers["Approov-TraceID"] = "b3RoZXItZmV0Y2g"
    before = stack.backend_requests()
    reply = send(stack, message, target=sent_to, method="DELETE" if change == "method" else None)
    refused(stack, reply, before, sent_to, "message_signature_mismatch")


def test_an_account_signed_body_changed_is_refused_only_where_the_body_is_sent(
    stack: ProxiedStack, gateway: str
) -> None:
    """Refused where the shipped file sends authsvc the body (Envoy); elsewhere the body is
    not checked (docs/message-signing.md) and it reaches the backend."""
    target = "/signed/account-tampered"
    message = sdk_request(stack, "POST", target, labels=("account",), body=b'{"amount": 1}')
    message.body = b'{"amount": 9}'
    before = stack.backend_requests()
    reply = send(stack, message)
    if FRONT_DOORS[gateway].checks_the_body:
        refused(stack, reply, before, target, "content_digest_mismatch")
    else:
        assert reply.status == 200


def test_an_account_signature_for_another_key_id_is_refused(stack: ProxiedStack) -> None:
    target = "/signed/other-key-id"
    message = request(
        "GET",
        url(stack, target),
        token_value=token(pay=pay_for(AUTHORIZATION.encode()), mskid="another-key"),
        headers=[("Authorization", AUTHORIZATION)],
    )
    sign(message, label="account", components=(*SDK_COMPONENTS, "authorization"))
    before = stack.backend_requests()
    refused(stack, send(stack, message), before, target, "mskid_mismatch")


# --- an app that could not get a token ---------------------------------------------------------


@pytest.mark.parametrize(
    ("token_header", "status_header", "status"),
    [
        ("", "no_network", "no_network"),  # okhttp 3.7, 3.8: the token header empty
        (None, "rejected", "rejected"),  # later 3.8, 4.0: no token header
        ("NO_NETWORK", None, "no_network"),  # setUseApproovStatusIfNoToken (3.5.6-3.5.8)
    ],
    ids=["empty-token", "absent-token", "status-in-token-header"],
)
def test_a_request_without_a_token_is_refused_with_the_status_its_app_reported(
    stack: ProxiedStack, token_header: str | None, status_header: str | None, status: str
) -> None:
    target = f"/api/no-token-{status}-{token_header is None}"
    headers = {"Authorization": AUTHORIZATION}
    if token_header is not None:
        headers["Approov-Token"] = token_header
    if status_header is not None:
        headers["Approov-Status"] = status_header
    before = stack.backend_requests()
    reply = stack.send("GET", target, headers)
    refused(stack, reply, before, target, "token_missing")
    assert decision_for(stack, target)["approov_status"] == status
