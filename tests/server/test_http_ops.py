"""GET /health, /ready and /metrics, and `serve --stateless`, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from mcp_server_connectwise.config import AuditConfig
from mcp_server_connectwise.http_auth import hash_token, new_token
from mcp_server_connectwise.http_ops import STATE_STORE_PROBE, StateStoreUnreachable

from support.served import serving

PRINCIPALS = {"alice": {"tenants": ("acme",)}}
METRICS_TOKEN = new_token()
WITH_METRICS = {"metrics_token_sha256": hash_token(METRICS_TOKEN)}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
LEGACY = "2025-11-25"  # a protocol revision with sessions, unless the server is stateless


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- /health and /ready ------------------------------------------------------------------------------------


async def test_health_answers_ok_to_anyone_and_says_nothing_more(tmp_path):
    async with serving(tmp_path, PRINCIPALS) as served, httpx2.AsyncClient() as raw:
        plain = await raw.get(served.base + "/health")
        odd = await raw.get(served.base + "/health", headers=bearer("not-a-token"))
    assert (plain.status_code, plain.json()) == (200, {"status": "ok"})
    assert (odd.status_code, odd.json()) == (200, {"status": "ok"})
    assert served.audit() == [] and served.requests() == []


async def test_ready_checks_the_tenants_keys_the_audit_and_the_state_store(tmp_path):
    async with serving(tmp_path, PRINCIPALS) as served, httpx2.AsyncClient() as raw:
        ready = await raw.get(served.base + "/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"tenants": "ok", "audit": "ok", "state": "embedded"}}
    assert served.requests() == []  # reading the keys sends nothing to ConnectWise


async def test_ready_is_503_naming_the_audit_while_its_directory_cannot_be_written(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    blocked = tmp_path / "audit"
    blocked.write_text("")  # a file where the audit log's directory should be
    async with serving(tmp_path, PRINCIPALS, audit=AuditConfig(path=blocked / "audit.jsonl")) as served:
        async with httpx2.AsyncClient() as raw:
            refused = await raw.get(served.base + "/ready")
            blocked.unlink()  # the operator fixes it: ready again, without a restart
            fixed = await raw.get(served.base + "/ready")
    assert refused.status_code == 503
    assert refused.json() == {
        "status": "not ready",
        "checks": {"tenants": "ok", "audit": "not writable", "state": "embedded"},
    }
    assert str(tmp_path) not in refused.text  # the reason is in the log, not on the wire
    assert "not ready: audit: The audit log cannot be written" in caplog.text
    assert fixed.status_code == 200


async def test_ready_is_503_while_a_tenant_has_no_api_keys(tmp_path):
    async with serving(tmp_path, PRINCIPALS, keys=False) as served, httpx2.AsyncClient() as raw:
        refused = await raw.get(served.base + "/ready")
    assert refused.status_code == 503
    assert refused.json()["checks"] == {"tenants": "no API keys for acme", "audit": "ok", "state": "embedded"}


async def test_ready_is_503_while_the_state_store_cannot_be_reached(tmp_path):
    async def unreachable() -> str:
        raise StateStoreUnreachable("connection refused")

    async with serving(tmp_path, PRINCIPALS) as served, httpx2.AsyncClient() as raw:
        setattr(served.app.state, STATE_STORE_PROBE, unreachable)  # where a shared store plugs in its probe
        refused = await raw.get(served.base + "/ready")
    assert refused.status_code == 503
    assert refused.json()["checks"] == {"tenants": "ok", "audit": "ok", "state": "unreachable"}


# --- /metrics --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, bearer("wrong"), bearer(hash_token(METRICS_TOKEN)), {"Authorization": "Bearer"}]
)
async def test_metrics_answer_401_without_their_own_token(tmp_path, headers):
    async with serving(tmp_path, PRINCIPALS, http=WITH_METRICS) as served, httpx2.AsyncClient() as raw:
        refused = await raw.get(served.base + "/metrics", headers=headers)
        principal = await raw.get(served.base + "/metrics", headers=bearer(served.tokens["alice"]))
        scraped = await raw.get(served.base + "/metrics", headers=bearer(METRICS_TOKEN))
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json() == {"error": "The metrics bearer token is required: Authorization: Bearer <token>."}
    assert principal.status_code == 401  # a principal's token is for /mcp, not for /metrics
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain; version=")


async def test_metrics_are_off_until_their_token_is_configured(tmp_path):
    async with serving(tmp_path, PRINCIPALS) as served, httpx2.AsyncClient() as raw:
        off = await raw.get(served.base + "/metrics", headers=bearer(METRICS_TOKEN))
    assert off.status_code == 404
    assert off.json() == {
        "error": "Metrics are off: create their token with `mcp-server-connectwise tokens metrics` and restart."
    }


async def test_metrics_count_the_calls_and_the_connectwise_requests_and_label_no_caller_text(tmp_path):
    async with serving(tmp_path, PRINCIPALS, http=WITH_METRICS) as served:
        async with served.client("alice") as alice:
            for _ in range(2):
                assert (await alice.call_tool("search_tickets", {"limit": 3})).is_error is False
            refused = await alice.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "x", "tenant": "umbrella-9"})
            assert refused.is_error
            unknown = await alice.call_tool("drop_every_table_7", {})
            assert unknown.is_error
        async with httpx2.AsyncClient() as raw:
            scraped = await raw.get(served.base + "/metrics", headers=bearer(METRICS_TOKEN))
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    assert value("cwmcp_tool_calls_total", tool="search_tickets", outcome="ok") == 2
    assert value("cwmcp_tool_call_seconds_count", tool="search_tickets") == 2
    assert value("cwmcp_tool_calls_total", tool="add_ticket_note", outcome="refused") == 1
    assert value("cwmcp_tool_calls_total", tool="unknown", outcome="refused") == 1
    gets = [entry for entry in served.requests() if entry["method"] == "GET" and entry["status"] == 200]
    assert gets and value("cwmcp_connectwise_requests_total", tenant="acme", method="GET", status="200") == len(gets)
    labels = {label for key in samples for label in key[1]}
    assert not [label for label in labels if "umbrella" in label[1] or "drop_every" in label[1]]


# --- serve --stateless --------------------------------------------------------------------------------------


async def test_stateless_serves_separate_clients_without_a_session(tmp_path):
    async with serving(tmp_path, {**PRINCIPALS, "bob": {"tenants": ("acme",)}}, stateless=True) as served:
        async with httpx2.AsyncClient() as raw:
            # No initialize, no Mcp-Session-Id: each POST stands alone, as a load balancer may route it anywhere.
            headers = {**MCP_HEADERS, **bearer(served.tokens["alice"]), "MCP-Protocol-Version": LEGACY}
            listed = await raw.post(
                served.url, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            )
            called = await raw.post(
                served.url,
                headers={**headers, **bearer(served.tokens["bob"])},
                json={
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": "get_ticket_details", "arguments": {"ticket_id": 1001}},
                },
            )
        for principal in ("alice", "bob"):  # the SDK's client on the legacy revision: it opens no session either
            http = httpx2.AsyncClient(headers=bearer(served.tokens[principal]))
            async with http, Client(streamable_http_client(served.url, http_client=http), mode="legacy") as client:
                assert len((await client.list_tools()).tools) > 10
                result = await client.call_tool("search_tickets", {"limit": 1})
                assert result.is_error is False
    for response in (listed, called):
        assert response.status_code == 200 and "mcp-session-id" not in response.headers
    assert '"name":"search_tickets"' in listed.text.replace(" ", "")
    assert '"isError":false' in called.text.replace(" ", "") and "1001" in called.text
    assert [line["principal"] for line in served.audit()] == ["bob", "alice", "bob"]


async def test_stateful_http_still_needs_its_session(tmp_path):
    """What --stateless changes: without it, the same session-less POST is refused."""
    async with serving(tmp_path, PRINCIPALS) as served, httpx2.AsyncClient() as raw:
        headers = {**MCP_HEADERS, **bearer(served.tokens["alice"]), "MCP-Protocol-Version": LEGACY}
        listed = await raw.post(served.url, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert listed.status_code == 400
