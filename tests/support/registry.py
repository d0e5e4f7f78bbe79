"""The tool sets the tests compare against, taken from the registry so that a new tool is covered unedited."""

from __future__ import annotations

from mcp_server_connectwise.toolsets import REGISTRY

TOOLS = frozenset(REGISTRY.by_name)
READS = frozenset(definition.name for definition in REGISTRY.tools if definition.read_only)
WRITES = TOOLS - READS
