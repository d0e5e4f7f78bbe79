"""Toolset `time`: log time against a ticket."""

from __future__ import annotations

from mcp_server_connectwise.services import time_entries
from mcp_server_connectwise.services.time_entries import TimeEntryCreated, TimeEntryRequest
from mcp_server_connectwise.toolsets.definition import ToolCall, ToolDefinition, Toolset


async def create_time_entry(call: ToolCall, entry: TimeEntryRequest) -> TimeEntryCreated:
    """Log time on a service ticket: at most 24 hours an entry; give end, hours or minutes. Refused on a status that
    forbids time, for a start in the future, and for the member, start and end of an entry already logged
    (unless allow_duplicate)."""
    created = await time_entries.create_time_entry(call.session, entry)
    call.wrote("time_entry", created.time_entry_id, ticket_id=entry.ticket_id, hours=created.hours)
    return created


TOOLSET = Toolset(
    "time",
    "log time",
    writes=(
        ToolDefinition(
            create_time_entry,
            title="Log time on a ticket",
            read_only=False,
            purpose="log time on it",
            examples=(
                {
                    "ticket_id": 1003,
                    "start": "2026-01-31T09:00:00+01:00",
                    "hours": 0.5,
                    "notes": "Reset the VPN token.",
                },
            ),
            next_tools=("get_ticket_details",),
            free_text=frozenset({"notes", "internal_notes"}),
            untrusted_output=False,
        ),
    ),
)
