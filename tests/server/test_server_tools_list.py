"""tools/list is pinned: names, titles, descriptions, schemas and annotations change only on purpose.

Regenerate with `UPDATE_SNAPSHOTS=1 pytest tests/test_server_tools_list.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support.harness import make_harness

SNAPSHOT = Path(__file__).parents[1] / "snapshots" / "tools_list.json"
READS = {"search_tickets", "get_ticket_details", "list_board_statuses"}


async def listed_tools(tmp_path, **options) -> list[dict]:
    harness = make_harness(tmp_path)
    async with harness.client(**options) as client:
        tools = (await client.list_tools()).tools
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]


async def test_tools_list_matches_the_snapshot(tmp_path):
    tools = await listed_tools(tmp_path)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(tools, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    assert tools == json.loads(SNAPSHOT.read_text(encoding="utf-8")), "tools/list changed: see the module docstring"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_both_protocol_eras_list_the_same_tools(tmp_path, mode):
    tools = await listed_tools(tmp_path, mode=mode)
    assert tools == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


async def test_annotations_are_honest(tmp_path):
    annotations = {tool["name"]: tool["annotations"] for tool in await listed_tools(tmp_path)}
    assert {name for name, a in annotations.items() if a["readOnlyHint"]} == READS
    assert all(a["openWorldHint"] for a in annotations.values())
    assert annotations["update_ticket"]["destructiveHint"] and annotations["update_ticket"]["idempotentHint"]
    for name in ("add_ticket_note", "create_time_entry"):
        assert not annotations[name]["destructiveHint"] and not annotations[name]["idempotentHint"]


async def test_every_tool_has_a_title_an_example_a_tenant_and_an_output_schema(tmp_path):
    for tool in await listed_tools(tmp_path):
        assert tool["title"] and "Example: {" in tool["description"]
        assert "tenant" in tool["inputSchema"]["properties"]
        assert tool["outputSchema"]["type"] == "object"


async def test_a_call_in_the_legacy_era_works_too(tmp_path):
    harness = make_harness(tmp_path)
    async with harness.client(mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        result = await client.call_tool("search_tickets", {"limit": 2})
    assert result.is_error is False and len(result.structured_content["tickets"]) == 2
