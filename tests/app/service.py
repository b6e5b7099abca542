"""The app under test, as both http test modules drive it: through Falcon's test client
(`auth`), or called as ASGI with raw header bytes (`check`), its decision lines captured."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from typing import Any

import falcon.testing

from authsvc.check.verify import Checker
from authsvc.config import Settings
from authsvc.http.app import create_app
from authsvc.observe.decisionlog import DecisionLog
from authsvc.observe.metrics import Metrics
from authsvc.runtime import Runtime
from authsvc.store.replay import ReplayStore
from tests.support.asgi import Answer, answer
from tests.support.tokens import DUMMY_SECRET

AUTHORIZATION = "Bearer abc"


class Service:
    """authsvc's app with Approov's dummy secret and `overrides` of its settings."""

    def __init__(
        self,
        verifier: Checker | None = None,
        replay_store: ReplayStore | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = dataclasses.replace(Settings(secret=DUMMY_SECRET), **overrides)
        self.log = io.StringIO()
        self.metrics = Metrics()
        runtime = Runtime.from_settings(self.settings)
        if verifier is not None:
            runtime = dataclasses.replace(runtime, verifier=verifier)
        if replay_store is not None:
            runtime = dataclasses.replace(runtime, replay_store=replay_store)
        self.app = create_app(runtime, decision_log=DecisionLog(self.log), metrics=self.metrics)
        self.client = falcon.testing.TestClient(self.app)

    def auth(
        self,
        tok: str | None,
        authorization: str | None = AUTHORIZATION,
        method: str = "GET",
        path: str = "/auth",
        headers: dict[str, str] | None = None,
    ) -> falcon.testing.Result:
        """A check through Falcon's test client, the token and Authorization as given."""
        sent = dict(headers or {})
        if tok is not None:
            sent["Approov-Token"] = tok
        if authorization is not None:
            sent["Authorization"] = authorization
        return self.client.simulate_request(method, path, headers=sent)

    def check(self, headers: list[tuple[bytes, bytes]], **options: Any) -> Answer:
        """A check with exactly these header bytes (tests.support.asgi.answer's options)."""
        return asyncio.run(answer(self.app, headers, **options))

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines()]

    def last_line(self) -> dict[str, Any]:
        return self.lines()[-1]
