"""POST /alerts over real HTTP on 127.0.0.1: who may report, what a body may hold, and a batch of alerts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server_connectwise.audit import read_calls
from mcp_server_connectwise.config import AppConfig, AuditConfig, HttpConfig, Principal, StateConfig
from mcp_server_connectwise.http_alerts import ALERTS_PATH, MAX_ALERTS
from mcp_server_connectwise.http_auth import hash_token, new_token
from mcp_server_connectwise.http_guard import uvicorn_config
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.server import Listener, build_network_app

from support.harness import sandbox_tenants

TOKENS = {"rmm": new_token(), "alice": new_token(), "ops": new_token()}
PERMISSIONS = {"rmm": ("alerts",), "alice": ("mcp",), "ops": ("mcp", "alerts")}
ALERT = {
    "tenant": "acme",
    "source": "nagios",
    "alert_id": "ping-acme-fw01",
    "state": "raised",
    "severity": "critical",
    "company": "ACME",
    "summary": "ACME-FW01 does not answer ping",
}


def bearer(principal: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[principal]}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    def __init__(self, base: str, sandbox, audit_path: Path) -> None:
        self.base, self.sandbox, self.audit_path = base, sandbox, audit_path

    @property
    def store(self):
        return self.sandbox.state.store

    def requests(self) -> list[dict]:
        return self.sandbox.state.request_log


@asynccontextmanager
async def serving(tmp_path: Path, state: StateConfig | None = None, **options) -> AsyncIterator[Served]:
    tenant = sandbox_tenant("acme", create_app(SandboxSettings(tickets=200)), requests_per_minute=5000)
    principals = {
        name: Principal(name=name, token_sha256=hash_token(token), tenants=("acme",), permissions=PERMISSIONS[name])
        for name, token in TOKENS.items()
    }
    config = AppConfig(
        default_tenant="acme",
        audit=AuditConfig(path=tmp_path / "audit.jsonl"),
        http=HttpConfig(principals=principals, max_request_body_bytes=64 * 1024),
        tenants={"acme": tenant.config},
        state=state or StateConfig(),
    )
    listener = Listener("http", "127.0.0.1", free_port())
    app = build_network_app(
        config, listener, transports={"acme": tenant.transport}, credentials={"acme": tenant.credentials}, **options
    )
    server = uvicorn.Server(uvicorn_config(app, listener.host, listener.port, config.http))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield Served(f"http://127.0.0.1:{listener.port}", tenant.app, tmp_path / "audit.jsonl")
    finally:
        server.should_exit = True
        await task


async def post(served: Served, body, principal: str | None = "rmm", **headers) -> httpx2.Response:
    auth = bearer(principal) if principal else {}
    async with httpx2.AsyncClient(timeout=60) as http:
        if isinstance(body, bytes):
            json_type = {"Content-Type": "application/json"}
            return await http.post(served.base + ALERTS_PATH, content=body, headers=auth | json_type | headers)
        return await http.post(served.base + ALERTS_PATH, json=body, headers=auth | headers)


async def test_an_alerts_token_reports_an_alert_and_is_audited_as_its_principal(tmp_path):
    async with serving(tmp_path) as served:
        response = await post(served, ALERT)
        assert response.status_code == 200, response.text
        [result] = response.json()["results"]
        assert result["ok"] is True and result["outcome"] == "created" and result["index"] == 0
        ticket = served.store["tickets"][result["ticket_id"]]
        assert ticket["externalXRef"] == "nagios:ping-acme-fw01" and ticket["priority"]["name"].startswith("Priority 1")
    [line] = read_calls(served.audit_path)
    assert (line["tool"], line["principal"], line["outcome"]) == ("report_alert", "rmm", "ok")


async def test_a_token_without_the_alerts_permission_gets_403_and_nothing_reaches_connectwise(tmp_path):
    async with serving(tmp_path) as served:
        response = await post(served, ALERT, principal="alice")
        assert response.status_code == 403 and "alerts permission" in response.json()["error"]
        assert served.requests() == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
async def test_no_valid_token_is_401(tmp_path, headers):
    async with serving(tmp_path) as served:
        response = await post(served, ALERT, principal=None, **headers)
        assert response.status_code == 401 and response.json()["error"].startswith("A bearer token is required")
        assert served.requests() == []


async def test_an_alerts_only_token_cannot_use_the_mcp_endpoint(tmp_path):
    async with serving(tmp_path) as served:
        async with httpx2.AsyncClient(headers=bearer("rmm")) as http:
            answer = await http.post(
                served.base + "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={"Accept": "application/json, text/event-stream"},
            )
        assert answer.status_code == 403
        async with httpx2.AsyncClient(headers=bearer("ops")) as http:
            async with Client(streamable_http_client(served.base + "/mcp", http_client=http)) as client:
                listed = await client.list_tools()
        assert "report_alert" in {tool.name for tool in listed.tools}  # mcp and alerts: both endpoints


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        (b"{not json", 422, "not JSON"),
        ([], 422, f"1 to {MAX_ALERTS}"),
        ([ALERT] * (MAX_ALERTS + 1), 422, f"1 to {MAX_ALERTS}"),
        ("a string", 422, "alert object"),
        (b"x" * (65 * 1024), 413, "over 65,536 bytes"),
    ],
)
async def test_a_body_that_holds_no_alerts_is_a_json_error(tmp_path, body, status, phrase):
    async with serving(tmp_path) as served:
        response = await post(served, body)
        assert response.status_code == status and phrase in response.json()["error"]
        assert served.requests() == []


async def test_each_alert_of_a_batch_gets_its_own_outcome(tmp_path):
    async with serving(tmp_path) as served:
        bad = ALERT | {"alert_id": "x", "severity": "urgent"}
        unknown = ALERT | {"alert_id": "y", "colour": "red"}
        other_tenant = ALERT | {"alert_id": "z", "tenant": "globex"}
        response = await post(served, [bad, ALERT, unknown, other_tenant])
        results = response.json()["results"]
    assert [r["ok"] for r in results] == [False, True, False, False]
    assert "severity" in results[0]["error"] and "colour" in results[2]["error"]
    assert "globex" in results[3]["error"]


async def test_a_batch_of_100_alerts_for_10_keys_makes_10_tickets(tmp_path):
    async with serving(tmp_path) as served:
        batch = [
            ALERT | {"alert_id": f"ping-{n % 10}", "summary": f"Host {n % 10} does not answer ping"} for n in range(100)
        ]
        response = await post(served, batch)
        results = response.json()["results"]
        assert [r["index"] for r in results] == list(range(100)) and all(r["ok"] for r in results), results
        tickets = {r["ticket_id"] for r in results}
        alert_tickets = [
            t for t in served.store["tickets"].values() if str(t.get("externalXRef", "")).startswith("nagios:ping-")
        ]
        assert len(tickets) == 10 and {t["id"] for t in alert_tickets} == tickets
        assert sum(r["outcome"] == "created" for r in results) == 10
    assert len(read_calls(served.audit_path)) == 100


async def test_alerts_have_the_same_host_and_origin_checks_as_mcp(tmp_path):
    async with serving(tmp_path) as served:
        response = await post(served, ALERT, Origin="https://evil.example")
        assert response.status_code == 403 and "Origin" in response.json()["error"]
        assert served.requests() == []


@pytest.mark.parametrize("body", [b"[" * 40_000, b"1" * 5_000])
async def test_json_nested_or_numbered_beyond_reading_is_422(tmp_path, body):
    async with serving(tmp_path) as served:
        response = await post(served, body)
        assert response.status_code == 422 and "not JSON" in response.json()["error"]


async def test_a_tenant_that_is_not_a_name_is_refused_not_defaulted(tmp_path):
    async with serving(tmp_path) as served:
        response = await post(served, [ALERT | {"tenant": 5}, ALERT])
        first, second = response.json()["results"]
        assert first == {"index": 0, "ok": False, "error": "tenant must be a tenant's name."}
        assert second["ok"] is True and "next_steps" not in second  # a webhook gets no MCP tool names
        assert len([r for r in served.requests() if r["method"] == "POST"]) == 1


async def test_at_start_each_tenants_alert_config_is_checked_against_its_connectwise_and_logged(tmp_path, caplog):
    import logging

    from mcp_server_connectwise.http_alerts import alerts_health
    from mcp_server_connectwise.sandbox.tenant import ALERTS

    caplog.set_level(logging.INFO, logger="mcp_server_connectwise.http_alerts")
    tenants = {
        "acme": sandbox_tenant("acme"),
        "globex": sandbox_tenant("globex", alerts=ALERTS.model_copy(update={"close_status": "Shredded"})),
        "initech": sandbox_tenant("initech", alerts=None),
    }
    runs = sandbox_tenants(tmp_path, tenants)
    await alerts_health(runs)
    await runs.aclose()
    said = [record.getMessage() for record in caplog.records if record.name.endswith("http_alerts")]
    assert said == [
        f"alerts of tenant acme: board {ALERTS.board}, status {ALERTS.status}, closed with {ALERTS.close_status}",
        "alerts of tenant globex cannot be handled: The alert config is wrong: [tenants.globex.alerts] close_status: "
        "'Shredded' is not a status of board Alerts in tenant globex; valid statuses: New, Acknowledged, "
        "Investigating, Auto-Closed, Closed. Nothing was changed.",
    ]
    assert tenants["initech"].app.state.request_log == []  # it takes no alerts: nothing asked


async def test_a_connectwise_failing_at_start_leaves_the_alert_config_unchecked_not_wrong(
    tmp_path, caplog, monkeypatch
):
    import logging

    from mcp_server_connectwise.connectwise import retry
    from mcp_server_connectwise.http_alerts import alerts_health

    monkeypatch.setattr(retry, "backoff", lambda *args, **kwargs: 0.0)
    caplog.set_level(logging.INFO, logger="mcp_server_connectwise.http_alerts")
    tenants = {
        "acme": sandbox_tenant("acme"),
        "globex": sandbox_tenant("globex", create_app(SandboxSettings(fault_rate=1.0))),  # every request fails
    }
    runs = sandbox_tenants(tmp_path, tenants)
    await alerts_health(runs)
    await runs.aclose()
    said = [record.getMessage() for record in caplog.records if record.name.endswith("http_alerts")]
    assert said[0].startswith("alerts of tenant acme: board Alerts")
    assert said[1].startswith("alert config of tenant globex unchecked: ") and "ConnectWise" in said[1], said
