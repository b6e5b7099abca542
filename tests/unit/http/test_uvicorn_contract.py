"""The uvicorn seam: CheckProtocol subclasses uvicorn's httptools protocol and reads its
internals. Which ones is read from CheckProtocol's own source (every `self.x` and
`self.x.y` it does not define itself), and each must be there on a live uvicorn connection: an
upgrade that renames or moves one fails here, naming it, before it fails a check."""

from __future__ import annotations

import ast
import asyncio
import inspect
from collections.abc import Iterator

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from authsvc.http import protocol
from authsvc.http.protocol import CheckProtocol
from tests.support.asgi import dummy_app
from tests.support.protocol_harness import MemoryTransport

OWN_NAMES = {
    node.name
    for node in ast.walk(ast.parse(inspect.getsource(CheckProtocol)))
    if isinstance(node, ast.FunctionDef)
}


def self_attributes() -> Iterator[tuple[str, ...]]:
    """Each `self.a` and `self.a.b` chain CheckProtocol reads or calls."""
    for node in ast.walk(ast.parse(inspect.getsource(protocol))):
        if not isinstance(node, ast.Attribute):
            continue
        chain = [node.attr]
        inner = node.value
        while isinstance(inner, ast.Attribute):
            chain.insert(0, inner.attr)
            inner = inner.value
        if isinstance(inner, ast.Name) and inner.id == "self":
            yield tuple(chain[:2])


def assigned_by_check_protocol() -> set[str]:
    tree = ast.parse(inspect.getsource(CheckProtocol))
    return {
        target.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id == "self"
        and target.attr.startswith("_")
    }


OWN = OWN_NAMES | assigned_by_check_protocol()
RELIED_ON = sorted({chain for chain in self_attributes() if chain[0] not in OWN})
# What a connection holds once a request went to the app (`cycle` then exists).
APP_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"


async def uvicorn_connection() -> HttpToolsProtocol:
    """uvicorn's own protocol (none of authsvc's code), after answering a request through the
    app, and with the next request begun."""
    config = Config(app=dummy_app(), http="httptools", lifespan="off", log_config=None)
    config.load()
    state = ServerState()
    connection = HttpToolsProtocol(config=config, server_state=state, app_state={})
    connection.connection_made(MemoryTransport())  # type: ignore[arg-type]
    connection.data_received(APP_REQUEST)
    while state.tasks:
        await asyncio.sleep(0)
    connection.on_message_begin()
    return connection


def test_the_protocol_relies_on_uvicorns_internals_that_this_test_checks() -> None:
    """The list is read from the source: it holds what the fast path is known to need."""
    assert {("pipeline",), ("cycle", "keep_alive"), ("server_state", "default_headers")} <= set(
        RELIED_ON
    )


@pytest.mark.parametrize("chain", RELIED_ON, ids=".".join)
def test_uvicorn_still_has_what_the_check_protocol_reads(chain: tuple[str, ...]) -> None:
    owner: object = asyncio.run(uvicorn_connection())
    path = "HttpToolsProtocol"
    for name in chain:
        assert hasattr(owner, name) or hasattr(HttpToolsProtocol, name), (
            f"uvicorn's {path} has no `{name}`: CheckProtocol (authsvc/http/protocol.py)"
            " relies on it; re-check the protocol against this uvicorn before widening the"
            " bound in pyproject.toml"
        )
        owner = getattr(owner, name)
        path += f".{name}"


def test_a_new_request_resets_what_the_check_protocol_expects_it_to() -> None:
    """`_to_app` hands a parsed head to uvicorn's `on_message_begin`, which must start a
    scope with a header list and reset the URL and headers, as 0.54 does."""
    began = asyncio.run(uvicorn_connection())
    began.url = b"/x"
    began.on_message_begin()
    assert (began.url, began.headers) == (b"", [])
    assert "headers" in began.scope
