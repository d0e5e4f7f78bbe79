"""Tenants: choosing one per call, unknown and read-only tenants, missing and wrong keys."""

from __future__ import annotations

import logging

from mcp_server_connectwise.audit import read_calls

from support.harness import SANDBOX, make_harness, store_keys
from support.registry import READS, TOOLS

WRITE_CALLS = [
    ("add_ticket_note", {"ticket_id": 1001, "text": "hi"}),
    ("update_ticket", {"ticket_id": 1001, "status": "New"}),
    ("create_time_entry", {"ticket_id": 1001, "start": "2026-11-02T09:00:00Z", "hours": 1}),
]


async def test_each_call_goes_to_the_tenant_it_names(tmp_path):
    harness = make_harness(tmp_path, {"acme": {}, "globex": {}})
    async with harness.client() as client:
        await client.call_tool("list_board_statuses", {"board": "Alerts", "tenant": "globex"})
        await client.call_tool("list_board_statuses", {"board": "Alerts"})  # the default tenant
    assert len(harness.requests("globex")) == 2 and len(harness.requests("acme")) == 2
    assert [line["tenant"] for line in harness.audit()] == ["globex", "acme"]


async def test_an_unknown_tenant_is_refused_naming_the_known_ones(tmp_path):
    harness = make_harness(tmp_path, {"acme": {}, "globex": {}})
    async with harness.client() as client:
        result = await client.call_tool("search_tickets", {"tenant": "initech"})
    assert result.is_error
    assert (
        "Unknown tenant 'initech'; known tenants: acme, globex; pass one of them as tenant." in result.content[0].text
    )
    assert harness.audit()[-1]["outcome"] == "refused"


async def test_without_a_default_a_call_must_name_its_tenant(tmp_path):
    harness = make_harness(tmp_path, {"acme": {}, "globex": {}}, default_tenant=None)
    async with harness.client() as client:
        result = await client.call_tool("search_tickets", {})
    assert result.is_error and "known tenants: acme, globex" in result.content[0].text


async def test_a_read_only_tenant_refuses_writes_by_name_before_any_request(tmp_path):
    harness = make_harness(tmp_path, {"acme": {"read_only": True}, "globex": {}})
    async with harness.client() as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        results = [await client.call_tool(name, args) for name, args in WRITE_CALLS]
        read = await client.call_tool("list_board_statuses", {"board": "Alerts"})
    assert tools == TOOLS  # the write tools stay listed: globex allows them
    for (name, _), result in zip(WRITE_CALLS, results, strict=True):
        assert result.is_error
        assert f"Tenant acme is read-only, so {name} is not allowed there; nothing was sent." in result.content[0].text
    assert read.is_error is False
    assert {r["method"] for r in harness.requests()} == {"GET"}
    assert [line["outcome"] for line in harness.audit()] == ["refused", "refused", "refused", "ok"]


async def test_when_every_tenant_is_read_only_no_write_tool_is_listed(tmp_path):
    harness = make_harness(tmp_path, {"acme": {"read_only": True}})
    async with harness.client() as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "hi"})
    assert tools == READS
    assert result.is_error and harness.requests() == []
    assert harness.audit()[-1]["outcome"] == "refused" and harness.audit()[-1]["error"] == "no such tool"


async def test_a_read_only_server_offers_only_the_reads(tmp_path):
    harness = make_harness(tmp_path, read_only=True)
    async with harness.client() as client:
        tools = (await client.list_tools()).tools
    assert {tool.name for tool in tools} == READS
    assert all(tool.annotations.read_only_hint for tool in tools)


async def test_toolsets_select_tools_but_read_only_still_wins(tmp_path):
    harness = make_harness(tmp_path, toolsets={"time", "boards"}, read_only=True)
    async with harness.client() as client:
        tools = (await client.list_tools()).tools
    assert [tool.name for tool in tools] == ["list_time_entries", "list_boards", "list_board_statuses"]


async def test_missing_keys_say_how_to_store_them(tmp_path, memory_keyring):
    harness = make_harness(tmp_path)
    memory_keyring.store.clear()
    async with harness.client() as client:
        result = await client.call_tool("search_tickets", {})
    assert result.is_error
    assert "Tenant acme has no API keys in the keyring; run `mcp-server-connectwise tenants set-keys acme`" in (
        result.content[0].text
    )
    assert harness.requests() == []


async def test_rejected_keys_point_to_set_keys_and_never_show_a_secret(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    harness = make_harness(tmp_path)
    store_keys("acme", private_key="wrong-private-key-0123")
    async with harness.client() as client:
        result = await client.call_tool("get_ticket_details", {"ticket_id": 1001})
    assert result.is_error
    assert "rejected the API keys of tenant acme" in result.content[0].text
    assert "tenants set-keys acme" in result.content[0].text
    line = read_calls(harness.audit_path)[-1]
    assert line["outcome"] == "error" and {r["status"] for r in line["requests"]} == {401}
    for text in (harness.audit_path.read_text(), caplog.text, result.content[0].text):
        assert "wrong-private-key-0123" not in text and SANDBOX.private_key not in text
