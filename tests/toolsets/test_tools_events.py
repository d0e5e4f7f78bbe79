"""get_ticket_events and the connectwise://{tenant}/events resource over a real MCP client: reading on after a
cursor, filters, refusals, and a notification to subscribers of both protocol eras when an event arrives."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest
from mcp import MCPDeprecationWarning, MCPError
from mcp.shared.subscriptions import ResourceUpdated
from mcp.types import ResourceUpdatedNotification

from mcp_server_connectwise.state.events import NewEvent, SqliteEventLog

from support.harness import make_harness

URI = "connectwise://acme/events"


def ticket_event(n: int, tenant: str = "acme", **changes) -> NewEvent:
    return NewEvent(
        **{
            "tenant": tenant,
            "message_id": f"m-{n}",
            "type": "ticket",
            "action": "updated",
            "record_id": 1000 + n,
            "received": datetime.now(timezone.utc),
            "board": "Service Desk",
            "fields": {"summary": f"Ticket {n}", "status": "New"},
        }
        | changes
    )


@pytest.fixture
def log(tmp_path):
    log = SqliteEventLog(tmp_path / "events.sqlite3")
    yield log
    log.close()


async def call(client, **arguments) -> dict:
    result = await client.call_tool("get_ticket_events", arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def test_the_first_call_gives_the_latest_and_a_cursor_then_only_what_is_new(tmp_path, log):
    harness = make_harness(tmp_path, events=log)
    for n in range(1, 6):
        await log.append(ticket_event(n))
    async with harness.client() as client:
        first = await call(client, limit=2)
        assert [e["cursor"] for e in first["events"]] == [4, 5] and first["next_cursor"] == 5
        assert first["has_more"] is False
        assert (await call(client, since=5))["events"] == []
        await log.append(ticket_event(6))
        await log.append(ticket_event(7, type="time", board="Alerts", fields={"ticket_id": 1001, "hours": 0.25}))
        await log.append(ticket_event(8, action="added"))
        page = await call(client, since=5, limit=2)
        assert [e["cursor"] for e in page["events"]] == [6, 7] and page["has_more"] and page["next_cursor"] == 7
        assert "since=7" in page["next_steps"]
        assert [e["cursor"] for e in (await call(client, since=0, types=["TICKET.added"]))["events"]] == [8]
        time = (await call(client, since=0, board="alerts"))["events"]
        assert time == [
            {
                "cursor": 7,
                "type": "time",
                "action": "updated",
                "id": 1007,
                "received": time[0]["received"],
                "board": "Alerts",
                "ticket_id": 1001,
                "hours": 0.25,
            }
        ]
    assert harness.requests() == []  # no ConnectWise request: the events are this server's


async def test_another_tenants_events_are_not_shown(tmp_path, log):
    harness = make_harness(tmp_path, {"acme": {}, "globex": {}}, events=log)
    await log.append(ticket_event(1, tenant="globex"))
    async with harness.client() as client:
        assert (await call(client))["events"] == []
        assert len((await call(client, tenant="globex"))["events"]) == 1


async def test_a_cursor_this_server_never_gave_out_is_refused_with_what_to_do(tmp_path, log):
    harness = make_harness(tmp_path, events=log)
    await log.append(ticket_event(1))
    async with harness.client() as client:
        result = await client.call_tool("get_ticket_events", {"since": 9})
    assert result.is_error
    assert "since 9 is past tenant acme's newest event (1)" in result.content[0].text
    assert "call without since to start again" in result.content[0].text


@pytest.mark.parametrize(
    "arguments", [{"limit": 0}, {"limit": True}, {"since": -1}, {"types": ["ticket.archived"]}, {"board": ""}]
)
async def test_arguments_no_event_could_match_are_refused(tmp_path, log, arguments):
    async with make_harness(tmp_path, events=log).client() as client:
        result = await client.call_tool("get_ticket_events", arguments)
    assert result.is_error and "validation error" not in result.content[0].text


async def test_the_resource_lists_the_latest_events_as_the_tool_does(tmp_path, log):
    harness = make_harness(tmp_path, events=log)
    await log.append(ticket_event(1))
    async with harness.client() as client:
        templates = (await client.list_resource_templates()).resource_templates
        read = await client.read_resource(URI)
        with pytest.raises(MCPError, match="Unknown tenant .globex."):
            await client.read_resource("connectwise://globex/events")
    assert [t.uri_template for t in templates] == ["connectwise://{tenant}/events"]
    body = json.loads(read.contents[0].text)
    assert [e["summary"] for e in body["events"]] == ["Ticket 1"] and body["next_cursor"] == 1
    assert [line["tool"] for line in harness.audit()] == ["get_ticket_events", "get_ticket_events"]


async def test_a_tenant_that_does_not_allow_the_tool_has_no_resource_either(tmp_path, log):
    harness = make_harness(tmp_path, {"acme": {"tools": ("search_tickets", "get_ticket_events")}, "globex": {"tools": ("search_tickets",)}}, events=log)  # fmt: skip
    async with harness.client() as client:
        with pytest.raises(MCPError, match="does not allow get_ticket_events"):
            await client.read_resource("connectwise://globex/events")


async def test_a_listening_client_is_told_when_an_event_arrives(tmp_path, log):
    harness = make_harness(tmp_path, events=log)
    async with harness.client() as client:
        async with client.listen(resource_subscriptions=[URI]) as subscription:
            await log.append(ticket_event(1, tenant="globex"))  # another tenant's resource: not this one
            await log.append(ticket_event(1))
            await log.append(ticket_event(2))
            told = await asyncio.wait_for(anext(aiter(subscription)), 5)
        assert told == ResourceUpdated(uri=URI)
        assert [e["cursor"] for e in (await call(client, since=0))["events"]] == [1, 2]


async def test_a_client_of_the_handshake_era_subscribes_and_unsubscribes(tmp_path, log):
    harness = make_harness(tmp_path, events=log)
    told: list[str] = []
    arrived = asyncio.Event()

    async def on_message(message) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            told.append(str(message.params.uri))
            arrived.set()

    async with harness.client(mode="legacy", message_handler=on_message) as client:
        assert client.server_capabilities.resources.subscribe is True
        with pytest.warns(MCPDeprecationWarning):
            await client.subscribe_resource(URI)
        await log.append(ticket_event(1))
        await asyncio.wait_for(arrived.wait(), 5)
        with pytest.warns(MCPDeprecationWarning):
            await client.unsubscribe_resource(URI)
        await log.append(ticket_event(2))
        await asyncio.sleep(0.1)
        with pytest.warns(MCPDeprecationWarning), pytest.raises(MCPError, match="No events resource"):
            await client.subscribe_resource("connectwise://globex/events")
    assert told == [URI]


async def test_without_the_events_toolset_there_is_no_resource(tmp_path, log):
    async with make_harness(tmp_path, events=log, toolsets=["tickets"]).client() as client:
        assert (await client.list_resource_templates()).resource_templates == []
