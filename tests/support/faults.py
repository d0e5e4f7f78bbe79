"""Scripted faults and rewriting transports in front of the in-process sandbox."""

from __future__ import annotations

import json
from collections import deque

import httpx2


class Rewriting(httpx2.AsyncBaseTransport):
    """The sandbox behind a transport that rewrites request and response JSON: another ConnectWise's habits."""

    def __init__(self, app) -> None:
        self.inner = httpx2.ASGITransport(app=app)

    def request_json(self, request: httpx2.Request, body: object) -> object:
        return body

    def response_json(self, request: httpx2.Request, body: object) -> object:
        return body

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        content = await request.aread()
        if content:
            content = json.dumps(self.request_json(request, json.loads(content))).encode()
            headers = [(name, value) for name, value in request.headers.items() if name != "content-length"]
            request = httpx2.Request(request.method, request.url, headers=headers, content=content)
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        if body:
            body = json.dumps(self.response_json(request, json.loads(body))).encode()
        headers = [(name, value) for name, value in response.headers.items() if name != "content-length"]
        return httpx2.Response(response.status_code, headers=headers, content=body)


def script_faults(app, **modes_by_method: list[str | None]) -> None:
    """The next requests of each method get these faults, one each in order (None: no fault); then none."""
    queues = {method.upper(): deque(modes) for method, modes in modes_by_method.items()}

    def pick() -> str | None:
        queue = queues.get(app.state.request_log[-1]["method"])  # the gate logs a request before picking its fault
        return queue.popleft() if queue else None

    app.state.faults.pick = pick


def recorded_settle_waits(monkeypatch) -> list[float]:
    """The waits write recovery sleeps before it looks (or reads back), recorded instead of slept."""
    from mcp_server_connectwise.services import write_recovery

    waits: list[float] = []

    async def recorded(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(write_recovery.asyncio, "sleep", recorded)
    return waits


def fast_recovery(monkeypatch) -> None:
    """Write recovery's settle waits and the client's backoff made short: where a test counts outcomes, not
    timings (those have their own tests). Retry-After is left as it is."""
    import random

    from mcp_server_connectwise.connectwise import retry
    from mcp_server_connectwise.services import write_recovery

    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(write_recovery, "RECHECK_SECONDS", 0.0)
    monkeypatch.setattr(retry, "backoff", lambda policy, attempt, jitter=random.random: 0.01)


class PatchesSubPaths(Rewriting):
    """The sandbox behind a client whose PATCH operations on `fields` name a sub-path instead (`ipAddress/value`):
    ConnectWise answers 200 and changes nothing (API.md), the silent false success."""

    def __init__(self, app, *fields: str, sub_path: str = "value") -> None:
        super().__init__(app)
        self.fields, self.sub_path = fields, sub_path

    def request_json(self, request: httpx2.Request, body: object) -> object:
        if request.method != "PATCH" or not isinstance(body, list):
            return body
        return [{**op, "path": f"{op['path']}/{self.sub_path}"} if op["path"] in self.fields else op for op in body]
