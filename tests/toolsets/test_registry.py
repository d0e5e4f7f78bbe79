"""The registry is the one source of what a server offers and of every word that names a tool.

Every registered tool's example call works on the sandbox and is audited; whatever subset a server offers
(toolsets, `--read-only`, allowlists), its instructions, descriptions, results and refusals name only tools it
offers; a tool filed in the wrong half of its toolset, an unknown next tool or example argument, and an
unknown toolset name stop the server at start-up.
"""

from __future__ import annotations

import json
import re

import pytest
from pydantic import BaseModel

from mcp_server_connectwise.config import ConfigError
from mcp_server_connectwise.toolsets import REGISTRY
from mcp_server_connectwise.toolsets.definition import Registry, RegistryError, ToolCall, ToolDefinition, Toolset

from support.harness import make_harness
from support.registry import READS, TOOLS

TOOL_NAME = re.compile(r"\b(" + "|".join(sorted(TOOLS, key=len, reverse=True)) + r")\b")
EXAMPLES = [(definition.name, example) for definition in REGISTRY.tools for example in definition.examples]


def named_tools(value: object) -> set[str]:
    return set(TOOL_NAME.findall(json.dumps(value, ensure_ascii=False)))


@pytest.mark.parametrize(("tool", "example"), EXAMPLES)
async def test_every_example_call_works_and_is_audited_once(tmp_path, tool, example):
    harness = make_harness(tmp_path)
    async with harness.client() as client:
        result = await client.call_tool(tool, example)
    assert result.is_error is False, result.content[0].text
    assert result.structured_content["next_steps"]
    [line] = harness.audit()
    assert (line["tool"], line["outcome"], line["principal"]) == (tool, "ok", "local")
    definition = REGISTRY.by_name[tool]
    assert bool(line["written"]) is (not definition.read_only)
    assert all(request["method"] == "GET" for request in line["requests"]) is definition.read_only


async def test_every_example_call_works_on_the_demo_sandbox(tmp_path):
    from mcp import Client

    from mcp_server_connectwise.server import build_demo_server

    async with Client(build_demo_server(tmp_path / "audit.jsonl"), raise_exceptions=True) as client:
        for tool, example in EXAMPLES:
            result = await client.call_tool(tool, example)
            assert result.is_error is False, (tool, result.content[0].text)


OFFERS = {
    "everything": ({}, {}),
    "boards, read-only": ({"toolsets": {"boards"}, "read_only": True}, {}),
    "tickets only": ({"toolsets": {"tickets"}}, {}),
    "read-only server": ({"read_only": True}, {}),
    "an allowlist": ({}, {"acme": {"tools": ("get_ticket_details", "add_ticket_note", "list_boards")}}),
}


@pytest.mark.parametrize("offer", sorted(OFFERS))
async def test_nothing_names_a_tool_that_is_not_offered(tmp_path, offer):
    options, tenants = OFFERS[offer]
    harness = make_harness(tmp_path, tenants or None, **options)
    async with harness.client() as client:
        listed = (await client.list_tools()).tools
        offered = {tool.name for tool in listed}
        said = named_tools(client.instructions)
        said |= named_tools([tool.description for tool in listed])
        for tool, example in EXAMPLES:
            if tool in offered:
                result = await client.call_tool(tool, example)
                assert result.is_error is False, result.content[0].text
                said |= named_tools(result.structured_content)
        # Refusals that point at a check: an unknown ticket, a status that forbids time, an ambiguous write.
        for tool, arguments in [
            ("get_ticket_details", {"ticket_id": 99}),
            ("add_ticket_note", {"ticket_id": 99, "text": "x"}),
            ("update_ticket", {"ticket_id": 99, "status": "New"}),
        ]:
            if tool in offered:
                refused = await client.call_tool(tool, arguments)
                assert refused.is_error
                said |= named_tools(refused.content[0].text)
    assert offered, offer
    assert said <= offered, f"{offer}: names tools it does not offer: {sorted(said - offered)}"


async def test_serving_the_boards_read_only_offers_exactly_the_board_reads(tmp_path):
    harness = make_harness(tmp_path, toolsets={"boards"}, read_only=True)
    async with harness.client() as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        instructions = client.instructions
    assert (
        listed
        == {"list_boards", "list_board_statuses"}
        == {name for name in READS if REGISTRY.toolset_of[name] == "boards"}
    )
    assert named_tools(instructions) == listed


@pytest.mark.parametrize(
    ("tenant", "ending"),
    [
        ({}, "check the id. Use search_tickets to find the ticket."),
        ({"tools": ("get_ticket_details",)}, "Ticket 99 was not found in tenant acme; check the id."),
    ],
)
async def test_a_refusal_points_at_the_tool_for_its_check_only_when_the_tenant_has_it(tmp_path, tenant, ending):
    harness = make_harness(tmp_path, {"acme": tenant, "globex": {}})  # globex lists search_tickets either way
    async with harness.client() as client:
        result = await client.call_tool("get_ticket_details", {"ticket_id": 99})
    assert result.content[0].text.endswith(ending)


def test_an_unknown_toolset_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as refused:
        make_harness(tmp_path, toolsets={"tikets"})
    assert str(refused.value) == (
        "'tikets' is not a toolset (did you mean 'tickets'?); the toolsets are: " + ", ".join(REGISTRY.toolset_names)
    )


# --- the registry refuses what is described inconsistently -------------------------------------------------


class Nothing(BaseModel):
    pass


async def writes_something(call: ToolCall) -> Nothing:
    """A write."""
    return Nothing()


def a_tool(**overrides) -> ToolDefinition:
    return ToolDefinition(
        **{
            "handler": writes_something,
            "title": "t",
            "read_only": False,
            "purpose": "do it",
            "examples": ({},),
            **overrides,
        }
    )


def test_a_write_filed_as_a_read_is_an_error():
    with pytest.raises(RegistryError, match="writes_something writes, but is filed as a read"):
        Toolset("x", "do things", reads=(a_tool(),))
    with pytest.raises(RegistryError, match="only reads, but is filed as a write"):
        Toolset("x", "do things", writes=(a_tool(read_only=True),))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"next_tools": ("no_such_tool",)}, "next tool 'no_such_tool' is not a registered tool"),
        ({"examples": ()}, "has no example call"),
        ({"examples": ({"ticket": 5},)}, r"example uses arguments it does not have: \['ticket'\]"),
    ],
)
def test_a_tool_described_inconsistently_is_an_error(overrides, message):
    with pytest.raises(RegistryError, match=message):
        Registry((Toolset("x", "do things", writes=(a_tool(**overrides),)),))


def test_a_tool_registered_twice_is_an_error():
    toolset = Toolset("x", "do things", writes=(a_tool(),))
    with pytest.raises(RegistryError, match="registered twice"):
        Registry((toolset, Toolset("y", "do more", writes=(a_tool(),))))
