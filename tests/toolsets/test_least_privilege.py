"""Least privilege: per-tenant tool allowlists, read-only tenants and servers, and writes refused while the
audit log cannot be written. Every refusal names the tool and happens before any ConnectWise request."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel

from mcp_server_connectwise.audit import AuditLog, read_calls
from mcp_server_connectwise.config import AppConfig, AuditConfig, ConfigError, load_config
from mcp_server_connectwise.connectwise import ApiCredentials
from mcp_server_connectwise.server import build_server
from mcp_server_connectwise.services.errors import OutcomeUnknown
from mcp_server_connectwise.services.tenancy import Tenants
from mcp_server_connectwise.toolsets import REGISTRY
from mcp_server_connectwise.toolsets.definition import Offer, ToolCall, ToolDefinition
from mcp_server_connectwise.toolsets.runtime import ToolRuntime

from support.harness import make_harness, tenant_config
from support.paths import EXAMPLE_CONFIG, REPO_ROOT
from support.registry import TOOLS

ALL_NAMES = ", ".join(sorted(TOOLS))


async def listed(harness) -> set[str]:
    async with harness.client() as client:
        return {tool.name for tool in (await client.list_tools()).tools}


# --- [tenants.X] tools = [...] ----------------------------------------------------------------------------------


async def test_a_tool_outside_the_tenants_allowlist_is_refused_by_name_before_any_request(tmp_path):
    harness = make_harness(tmp_path, {"acme": {"tools": ("search_tickets", "get_ticket_details")}, "globex": {}})
    async with harness.client() as client:
        refused = await client.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "hi", "tenant": "acme"})
        refused_read = await client.call_tool("list_board_statuses", {"board": "Alerts"})  # acme is the default
        allowed = await client.call_tool("get_ticket_details", {"ticket_id": 1001, "tenant": "acme"})
        elsewhere = await client.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "hi", "tenant": "globex"})
    assert refused.content[0].text == (
        "Error executing tool add_ticket_note: Tenant acme does not allow add_ticket_note; its tools are "
        "search_tickets, get_ticket_details. Nothing was sent."
    )
    assert refused_read.is_error and "Tenant acme does not allow list_board_statuses" in refused_read.content[0].text
    assert allowed.is_error is False and elsewhere.is_error is False
    assert {r["method"] for r in harness.requests("acme")} == {"GET"}
    assert [r["path"] for r in harness.requests("acme")] == [r["path"] for r in harness.audit()[2]["requests"]]
    assert [(line["tenant"], line["outcome"]) for line in harness.audit()] == [
        ("acme", "refused"),
        ("acme", "refused"),
        ("acme", "ok"),
        ("globex", "ok"),
    ]


async def test_tools_list_shows_a_tool_when_some_tenant_can_run_it(tmp_path):
    harness = make_harness(
        tmp_path,
        {
            "acme": {"tools": ("search_tickets", "add_ticket_note")},
            "globex": {"tools": ("list_board_statuses", "update_ticket"), "read_only": True},
        },
    )
    # update_ticket: only globex lists it, and globex is read-only, so no tenant can run it.
    assert await listed(harness) == {"search_tickets", "add_ticket_note", "list_board_statuses"}


async def test_a_read_only_server_wins_over_every_allowlist(tmp_path):
    harness = make_harness(tmp_path, {"acme": {"tools": ("search_tickets", "update_ticket")}}, read_only=True)
    assert await listed(harness) == {"search_tickets"}


async def test_toolsets_and_allowlists_both_narrow(tmp_path):
    harness = make_harness(tmp_path, {"acme": {"tools": ("search_tickets", "create_time_entry")}}, toolsets={"time"})
    assert await listed(harness) == {"create_time_entry"}


def test_an_unknown_tool_in_an_allowlist_stops_the_server_at_start_up(tmp_path):
    config = AppConfig(
        audit=AuditConfig(path=tmp_path / "audit.jsonl"),
        tenants={
            "acme": tenant_config("acme"),
            "globex": tenant_config("globex", tools=("search_tickets", "serach_tickets")),
        },
    )
    with pytest.raises(ConfigError) as caught:
        build_server(config)
    assert str(caught.value) == (
        "tenant 'globex': key 'tools': 'serach_tickets' is not a tool (did you mean 'search_tickets'?); "
        f"the tools are: {ALL_NAMES}"
    )
    assert not (tmp_path / "audit.jsonl").exists()


def test_an_unknown_tool_in_the_config_file_is_reported_with_the_file(tmp_path):
    path = tmp_path / "tenants.toml"
    path.write_text(
        '[tenants.acme]\ncompany_id = "acme"\nclient_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"\nsite = "api-na.myconnectwise.net"\n'
        'tools = ["search_tickets", "delete_everything"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        build_server(load_config(path))
    assert str(caught.value) == (
        f"{path}: tenant 'acme': key 'tools': 'delete_everything' is not a tool; the tools are: {ALL_NAMES}"
    )


def test_the_readme_tools_table_names_every_tool_with_its_toolset():
    # The example config points at this table for the names a `tools` allowlist takes.
    readme = (REPO_ROOT / "README.md").read_text()
    assert 'README\'s "Tools" table' in EXAMPLE_CONFIG.read_text()
    for definition in REGISTRY.tools:
        assert f"| `{definition.name}` | {REGISTRY.toolset_of[definition.name]} |" in readme


# --- writes while the audit log cannot be written ----------------------------------------------------------------


async def test_writes_are_refused_while_the_audit_log_cannot_be_written_and_reads_go_on(tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    harness = make_harness(tmp_path)
    harness.audit_path.mkdir()  # the audit file's path is a directory: no line can be written
    async with harness.client() as client:
        write = await client.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "hi"})
        read = await client.call_tool("get_ticket_details", {"ticket_id": 1001})
    assert write.content[0].text == (
        "Error executing tool add_ticket_note: The audit log cannot be written: its path is a directory. "
        "Writes are disabled until it can be, so add_ticket_note sent nothing; reads still work."
    )
    assert read.is_error is False
    assert harness.requests() and {r["method"] for r in harness.requests()} == {"GET"}
    # The operator hears of every line that could not be written, and of nothing secret.
    assert caplog.text.count("not written: The audit log cannot be written") == 2


# --- what the runtime passes through to the audit --------------------------------------------------------------


class Nothing(BaseModel):
    pass


async def sent_but_unconfirmed(call: ToolCall) -> Nothing:
    """A write whose answer was lost."""
    raise OutcomeUnknown("The note was sent but no answer came back; check the ticket before sending it again.")


async def test_a_write_of_unknown_outcome_is_audited_as_unknown(tmp_path):
    definition = ToolDefinition(sent_but_unconfirmed, title="t", read_only=False, purpose="t", examples=({},))
    config = AppConfig(audit=AuditConfig(path=tmp_path / "audit.jsonl"), tenants={"acme": tenant_config("acme")})
    tenants = Tenants(config, credentials={"acme": ApiCredentials("public", "private")})
    runtime = ToolRuntime(tenants, AuditLog(config.audit.path), "stdio:tester", Offer.of([definition]))
    with pytest.raises(Exception, match="no answer came back"):
        await runtime.run(definition, {})
    [line] = read_calls(config.audit.path)
    assert (line["outcome"], line["principal"], line["tenant"]) == ("unknown", "stdio:tester", "acme")
