"""The MCP layer: one toolset per domain, each with its tools; `REGISTRY` lists them all.

The registry is the single source for tools/list, read-only filtering, instructions, next-step hints, and the
tests' snapshots, fuzzing and audit checks. Adding a tool: its handler and definition in its toolset module
(and a new toolset's line here).
"""

from __future__ import annotations

from mcp_server_connectwise.toolsets import (
    agreements,
    alerts,
    boards,
    companies,
    configurations,
    contacts,
    events,
    service,
    tickets,
    time,
)
from mcp_server_connectwise.toolsets.definition import Registry

REGISTRY = Registry(
    (
        tickets.TOOLSET,
        time.TOOLSET,
        boards.TOOLSET,
        service.TOOLSET,
        alerts.TOOLSET,
        companies.TOOLSET,
        contacts.TOOLSET,
        agreements.TOOLSET,
        configurations.TOOLSET,
        events.TOOLSET,
    )
)
