"""Fault injection: 5xx and dropped connections at the configured rate, drop-after-commit, 429, latency."""

from __future__ import annotations

import time

import httpx2
import pytest

from mcp_server_connectwise.sandbox import SandboxSettings, create_app

from support.sandbox_http import sandbox_http


async def test_fault_rate_is_honoured_within_tolerance():
    app = create_app(SandboxSettings(tickets=10, fault_rate=0.2))
    outcomes = {"ok": 0, "5xx": 0, "dropped": 0}
    async with sandbox_http(app) as client:
        for _ in range(1000):
            try:
                response = await client.get("/system/info")
            except httpx2.TransportError:
                outcomes["dropped"] += 1
                continue
            if response.status_code >= 500:
                assert response.json()["code"] == "ConnectWiseApi"
                outcomes["5xx"] += 1
            else:
                assert response.status_code == 200
                outcomes["ok"] += 1
    failed = outcomes["5xx"] + outcomes["dropped"]
    assert 150 <= failed <= 250, outcomes  # 20% of 1000, well inside 4 standard deviations
    assert outcomes["5xx"] > 50 and outcomes["dropped"] > 50
    assert sum(app.state.faults.injected.values()) == failed
    assert sum(1 for e in app.state.request_log if e["fault"]) == failed


async def test_faults_are_off_by_default_and_repeatable():
    async def run() -> list[int]:
        app = create_app(SandboxSettings(tickets=5, fault_rate=0.5, seed=7))
        statuses = []
        async with sandbox_http(app) as client:
            for _ in range(50):
                try:
                    statuses.append((await client.get("/system/info")).status_code)
                except httpx2.TransportError:
                    statuses.append(0)
        return statuses

    assert await run() == await run()
    app = create_app(SandboxSettings(tickets=5))
    async with sandbox_http(app) as client:
        assert {(await client.get("/system/info")).status_code for _ in range(200)} == {200}


async def test_drop_before_does_not_write_and_drop_after_commit_does():
    app = create_app(SandboxSettings(tickets=5))
    body = {"summary": "Outcome unknown", "company": {"identifier": "ACME"}, "board": {"id": 1}}
    store = app.state.store
    async with sandbox_http(app) as client:
        app.state.faults.fail_next("drop_before")
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.post("/service/tickets", json=body)
        assert not [t for t in store["tickets"].values() if t["summary"] == "Outcome unknown"]
        app.state.faults.fail_next("drop_after_commit")
        with pytest.raises(httpx2.TransportError):
            await client.post("/service/tickets", json=body)
        assert len([t for t in store["tickets"].values() if t["summary"] == "Outcome unknown"]) == 1
        app.state.faults.fail_next("error_503")
        assert (await client.get("/system/info")).status_code == 503
        assert (await client.get("/system/info")).status_code == 200
    assert [e["fault"] for e in app.state.request_log] == ["drop_before", "drop_after_commit", "error_503", None]


async def test_rate_limit_answers_429_with_retry_after():
    app = create_app(SandboxSettings(tickets=5, rate_limit=30))
    async with sandbox_http(app) as client:
        statuses = [(await client.get("/system/info")).status_code for _ in range(30)]
        assert statuses == [200] * 30
        limited = await client.get("/system/info")
    assert limited.status_code == 429
    seconds = int(limited.headers["Retry-After"])
    assert 1 <= seconds <= 60
    assert limited.json() == {
        "error": "ConnectWiseAPI",
        "message": f"Too many requests. Please try again in {seconds} seconds.",
    }


async def test_latency_is_added():
    app = create_app(SandboxSettings(tickets=5, latency_ms=40))
    async with sandbox_http(app) as client:
        started = time.perf_counter()
        for _ in range(5):
            await client.get("/system/info")
        assert time.perf_counter() - started >= 0.2
