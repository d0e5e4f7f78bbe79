"""The console script over stdio, driven by the SDK's client and by an independent client (the MCP Inspector CLI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from support.registry import TOOLS


def console_script() -> str:
    script = shutil.which("mcp-server-connectwise", path=str(Path(sys.executable).parent))
    assert script, "the console script is not installed next to this interpreter"
    return script


async def test_console_script_serves_demo_over_stdio(tmp_path):
    params = StdioServerParameters(
        command=console_script(), args=["demo", "--audit-path", str(tmp_path / "audit.jsonl")]
    )
    async with Client(params) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("list_board_statuses", {"board": "Service Desk"})
    assert tools == TOOLS
    assert result.is_error is False
    assert result.structured_content["statuses"]
    audit_lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["tool"] for line in audit_lines] == ["list_board_statuses"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_arguments_that_do_not_fit_are_one_sentence_over_stdio(tmp_path, mode):
    params = StdioServerParameters(
        command=console_script(), args=["demo", "--audit-path", str(tmp_path / "audit.jsonl")]
    )
    async with Client(params, mode=mode) as client:
        no_start = await client.call_tool("create_time_entry", {"ticket_id": 1003, "hours": 1})
        too_long = await client.call_tool(
            "create_time_entry", {"ticket_id": 1003, "start": "2026-01-31T09:00:00Z", "minutes": 2000}
        )
    prefix = "Error executing tool create_time_entry: "
    assert no_start.is_error and no_start.content[0].text == prefix + "start is required; nothing was sent."
    assert too_long.is_error and too_long.content[0].text == prefix + "minutes must be at most 1440; nothing was sent."


def test_version_and_help_run_without_a_config():
    out = subprocess.run([console_script(), "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("serve", "demo", "sandbox", "tenants", "bench"):
        assert command in out


# --- MCP Inspector CLI: an independent (TypeScript SDK) client -------------------------------------------

INSPECTOR = os.environ.get("MCP_INSPECTOR_BIN") or shutil.which("mcp-inspector")
needs_inspector = pytest.mark.skipif(
    not INSPECTOR and not os.environ.get("CI"),
    reason="set MCP_INSPECTOR_BIN (`.ci/run` installs @modelcontextprotocol/inspector from npm)",
)


def inspector(tmp_path: Path, *args: str, era: str) -> tuple[int, dict, str]:
    assert INSPECTOR, "CI must provide the MCP Inspector CLI"
    home = Path(os.environ.get("MCP_INSPECTOR_HOME") or tmp_path)
    env = {**os.environ, "HOME": str(home)}
    command = [
        INSPECTOR,
        "--cli",
        "-q",
        "--format",
        "json",
        "--protocol-era",
        era,
        *args,
        "--",
        console_script(),
        "demo",
        "--audit-path",
        str(tmp_path / "audit.jsonl"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    body = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, body, done.stderr


@needs_inspector
@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_lists_tools_strictly(tmp_path, era):
    code, body, stderr = inspector(tmp_path, "--strict", "--method", "tools/list", era=era)
    assert code == 0, stderr
    tools = {tool["name"]: tool for tool in body["result"]["tools"]}
    assert set(tools) == TOOLS
    assert tools["search_tickets"]["annotations"]["readOnlyHint"] is True
    assert tools["update_ticket"]["annotations"]["readOnlyHint"] is False


@needs_inspector
@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_calls_a_tool(tmp_path, era):
    code, body, stderr = inspector(
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "search_tickets",
        "--tool-args-json",
        json.dumps({"limit": 3}),
        era=era,
    )
    assert code == 0, stderr
    result = body["result"]
    assert result["isError"] is False
    assert len(result["structuredContent"]["tickets"]) == 3


@needs_inspector
def test_inspector_sees_a_refusal_as_a_tool_error(tmp_path):
    code, body, _ = inspector(
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "get_ticket_details",
        "--tool-args-json",
        json.dumps({"ticket_id": 987654321}),
        era="modern",
    )
    assert code == 5  # the Inspector's exit code for a tool result with isError
    assert "987654321" in body["result"]["content"][0]["text"]


@needs_inspector
def test_inspector_sees_a_missing_argument_as_one_sentence(tmp_path):
    code, body, _ = inspector(
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "create_time_entry",
        "--tool-args-json",
        json.dumps({"ticket_id": 1003, "hours": 1}),
        era="modern",
    )
    assert code == 5
    assert body["result"]["content"][0]["text"] == (
        "Error executing tool create_time_entry: start is required; nothing was sent."
    )
