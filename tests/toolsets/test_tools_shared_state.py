"""Two servers (replicas) over one sandbox and one real Redis (`[state] url`), through MCP clients: an alert
reported to both at once makes one ticket, a list one replica fetched costs the other no request, and while
Redis is down reads answer and alert writes are refused with a sentence, until it is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mcp import Client

from mcp_server_connectwise.config import AppConfig, AuditConfig
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.server import build_server
from mcp_server_connectwise.state.redis.connection import CHECK_SECONDS_WHILE_UNREACHABLE
from toolsets.test_tools_alerts import ALERT, KEY, tickets_of

from support.harness import sandbox_app
from support.state_store import state_config


def replicas(tmp_path: Path, redis_server, count: int = 2, **sandbox_settings):
    """`count` servers of tenant acme on one sandbox, sharing `redis_server`; and the sandbox."""
    sandbox = sandbox_tenant("acme", sandbox_app(**sandbox_settings), requests_per_minute=5000)
    servers = [
        build_server(
            AppConfig(
                audit=AuditConfig(path=tmp_path / f"audit-{number}.jsonl"),
                tenants={"acme": sandbox.config},
                state=state_config(redis_server),
            ),
            transports={"acme": sandbox.transport},
            credentials={"acme": sandbox.credentials},
        )
        for number in range(count)
    ]
    return servers, sandbox.app


def text(result) -> str:
    return result.content[0].text


async def test_one_alert_reported_to_both_replicas_at_once_makes_one_ticket(tmp_path, redis_server):
    # A sandbox slow enough that both replicas look for the alert's ticket before either has made it.
    (first, second), app = replicas(tmp_path, redis_server, latency_ms=20)
    async with Client(first) as one, Client(second) as two:
        for number, client in enumerate((one, two)):  # both warm: they reach the alert's lock together
            await client.call_tool("report_alert", ALERT | {"state": "raised", "alert_id": f"warm-up-{number}"})
        answers = await asyncio.gather(
            *(client.call_tool("report_alert", ALERT | {"state": "raised"}) for client in (one, two, one, two))
        )
    assert not any(answer.is_error for answer in answers), [text(a) for a in answers]
    outcomes = sorted(answer.structured_content["outcome"] for answer in answers)
    assert outcomes == ["coalesced", "coalesced", "coalesced", "created"]
    [ticket] = tickets_of(app.state.store)
    assert {answer.structured_content["ticket_id"] for answer in answers} == {ticket["id"]}
    repeats = sorted(a.structured_content["repeats"] for a in answers if a.structured_content["outcome"] != "created")
    assert repeats == [1, 2, 3]  # one count, whichever replica a repeat reached


async def test_a_list_one_replica_fetched_costs_the_other_no_request(tmp_path, redis_server):
    (first, second), app = replicas(tmp_path, redis_server)
    async with Client(first) as one, Client(second) as two:
        cold = await one.call_tool("list_boards", {})
        fetched = len(app.state.request_log)
        shared = await two.call_tool("list_boards", {})
    assert fetched > 0 and len(app.state.request_log) == fetched  # the boards and their statuses, from Redis
    assert shared.structured_content == cold.structured_content


async def test_while_redis_is_down_reads_answer_and_alerts_are_refused_until_it_is_back(tmp_path, redis_server):
    [server], app = replicas(tmp_path, redis_server, count=1)
    async with Client(server) as client:
        assert not (await client.call_tool("search_tickets", {"limit": 5})).is_error
        redis_server.stop()
        read = await client.call_tool("search_tickets", {"status": "New", "limit": 5})
        refused = await client.call_tool("report_alert", ALERT | {"state": "raised"})
        assert not read.is_error, text(read)
        assert refused.is_error and f"Alert {KEY} was not handled: the shared state store at redis://" in text(refused)
        assert "cannot be reached" in text(refused) and "send it again once the store answers" in text(refused)
        assert tickets_of(app.state.store) == []

        redis_server.start()
        await asyncio.sleep(CHECK_SECONDS_WHILE_UNREACHABLE + 0.5)
        created = await client.call_tool("report_alert", ALERT | {"state": "raised"})
    assert not created.is_error, text(created)
    assert created.structured_content["outcome"] == "created" and len(tickets_of(app.state.store)) == 1
