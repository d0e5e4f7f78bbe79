"""tools/list is pinned, one snapshot per tool: names, titles, descriptions, schemas and annotations change only
on purpose. Every registered tool must have its snapshot, and every snapshot a registered tool.

Regenerate with `UPDATE_SNAPSHOTS=1 pytest tests/server/test_server_tools_list.py` and review the diff.
"""

from __future__ import annotations

import json
import os

import pytest

from mcp_server_connectwise.bench.listing import TARGET_BYTES_PER_TOOL, listing_bytes

from support.harness import make_harness
from support.paths import REPO_ROOT
from support.registry import READS, TOOLS

SNAPSHOTS = REPO_ROOT / "tests" / "snapshots" / "tools"


async def listed_tools(tmp_path, **options) -> dict[str, dict]:
    harness = make_harness(tmp_path)
    async with harness.client(**options) as client:
        tools = (await client.list_tools()).tools
    return {tool.name: tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools}


def snapshot(name: str) -> dict | None:
    path = SNAPSHOTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


@pytest.mark.parametrize("name", sorted(TOOLS))
async def test_each_tool_matches_its_snapshot(tmp_path, name):
    tool = (await listed_tools(tmp_path))[name]
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        (SNAPSHOTS / f"{name}.json").write_text(
            json.dumps(tool, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
        )
    assert snapshot(name) is not None, f"{name} has no snapshot: see the module docstring"
    assert tool == snapshot(name), f"tools/list changed for {name}: see the module docstring"


def test_every_snapshot_is_of_a_registered_tool():
    assert {path.stem for path in SNAPSHOTS.glob("*.json")} == TOOLS


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_both_protocol_eras_list_the_same_tools(tmp_path, mode):
    tools = await listed_tools(tmp_path, mode=mode)
    assert tools == {name: snapshot(name) for name in TOOLS}


async def test_annotations_are_honest(tmp_path):
    annotations = {name: tool["annotations"] for name, tool in (await listed_tools(tmp_path)).items()}
    assert {name for name, a in annotations.items() if a["readOnlyHint"]} == READS
    # Every tool talks to ConnectWise but the one reading the events this server keeps.
    assert {name for name, a in annotations.items() if not a["openWorldHint"]} == {"get_ticket_events"}
    assert annotations["update_ticket"]["destructiveHint"] and annotations["update_ticket"]["idempotentHint"]
    for name in ("add_ticket_note", "create_time_entry"):
        assert not annotations[name]["destructiveHint"] and not annotations[name]["idempotentHint"]


async def test_a_write_states_every_hint_and_a_read_only_those_the_spec_gives_it(tmp_path):
    # The spec: destructiveHint and idempotentHint mean something only when readOnlyHint is false, and a tool's
    # own title comes before annotations.title.
    for name, tool in (await listed_tools(tmp_path)).items():
        hints = {"readOnlyHint", "openWorldHint"} | (set() if name in READS else {"destructiveHint", "idempotentHint"})
        assert set(tool["annotations"]) == hints, name


async def test_tools_list_takes_at_most_2_kb_per_tool_on_average(tmp_path):
    async with make_harness(tmp_path).client() as client:
        total, sizes = listing_bytes(await client.list_tools())
    assert set(sizes) == TOOLS
    assert total / len(sizes) <= TARGET_BYTES_PER_TOOL, f"{total / len(sizes):,.0f} bytes per tool: {sizes}"


async def test_every_tool_has_a_title_an_example_a_tenant_and_an_output_schema(tmp_path):
    for tool in (await listed_tools(tmp_path)).values():
        assert tool["title"] and "Example: {" in tool["description"]
        assert "tenant" in tool["inputSchema"]["properties"]
        assert tool["outputSchema"]["type"] == "object"


async def test_a_call_in_the_legacy_era_works_too(tmp_path):
    harness = make_harness(tmp_path)
    async with harness.client(mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        result = await client.call_tool("search_tickets", {"limit": 2})
    assert result.is_error is False and len(result.structured_content["tickets"]) == 2
