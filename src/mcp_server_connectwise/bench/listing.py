"""tools/list bytes: what listing the tools costs a model's context, from a real in-memory MCP client against the
demo server. Bytes are of compact JSON (as on the wire), by alias, without absent fields."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.types import ListToolsResult

from mcp_server_connectwise.server import build_demo_server

# A size budget, not a speed: `tests/server/test_server_tools_list.py` holds the registry's tools to it.
TARGET_BYTES_PER_TOOL = 2048


def _json_bytes(model: Any) -> int:
    body = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def listing_bytes(listed: ListToolsResult) -> tuple[int, dict[str, int]]:
    """The tools/list result's JSON bytes, and each tool's."""
    return _json_bytes(listed), {tool.name: _json_bytes(tool) for tool in listed.tools}


async def bench_listing() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="connectwise-bench-") as directory:
        async with Client(build_demo_server(Path(directory) / "audit.jsonl")) as client:
            listed = await client.list_tools()
    total, sizes = listing_bytes(listed)
    average = total / len(sizes)
    largest = max(sizes, key=sizes.__getitem__)
    return [
        ("tools listed", str(len(sizes))),
        ("tools/list result, JSON bytes", f"{total:,}"),
        (
            f"average per tool (target ≤ {TARGET_BYTES_PER_TOOL:,})",
            f"{average:,.0f} ({'within' if average <= TARGET_BYTES_PER_TOOL else 'over'} the target)",
        ),
        ("largest tool", f"{largest}: {sizes[largest]:,}"),
    ]
