"""Toolset `events`: what ConnectWise's callbacks said changed, as events to follow instead of polling."""

from __future__ import annotations

from mcp_server_connectwise.services import events
from mcp_server_connectwise.services.events import EventsQuery, TicketEvents
from mcp_server_connectwise.toolsets.definition import Hint, ToolCall, ToolDefinition, Toolset


async def get_ticket_events(call: ToolCall, query: EventsQuery) -> TicketEvents:
    """Changes ConnectWise reported (callbacks), oldest first, after the cursor since; without it the latest
    events and the cursor to go on from. No ConnectWise request: an event is a prompt to read the record."""
    return await events.get_ticket_events(call.session, query)


def _hint(result: TicketEvents) -> Hint:
    if result.has_more:
        return Hint(f"More events: call again with since={result.next_cursor}.")
    if not result.events:
        return Hint(f"No events yet; call again later with since={result.next_cursor}.", then=False)
    return Hint(f"Later: call again with since={result.next_cursor}.")


TOOLSET = Toolset(
    "events",
    "follow what changed in ConnectWise",
    reads=(
        ToolDefinition(
            get_ticket_events,
            title="Follow ticket events",
            read_only=True,
            open_world=False,
            purpose="follow what changed",
            hint=_hint,
            examples=({"types": ["ticket"], "limit": 20},),
            next_tools=("get_ticket_details",),
        ),
    ),
)
