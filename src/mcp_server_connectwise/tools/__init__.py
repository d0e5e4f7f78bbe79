"""The MCP layer: thin tools over the services, registered from data (see `base.ToolDefinition`)."""

from __future__ import annotations

from mcp_server_connectwise.tools import boards, tickets, time_entries
from mcp_server_connectwise.tools.base import ToolDefinition

ALL_TOOLS: list[ToolDefinition] = [*tickets.TOOLS, *time_entries.TOOLS, *boards.TOOLS]
