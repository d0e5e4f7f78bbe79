"""Toolset `tickets`: find, read, note and update service tickets."""

from __future__ import annotations

from mcp_server_connectwise.services import notes, ticket_details, ticket_search, updates
from mcp_server_connectwise.services.errors import Look
from mcp_server_connectwise.services.notes import NoteAdded, NoteRequest
from mcp_server_connectwise.services.ticket_details import TicketDetails, TicketDetailsRequest
from mcp_server_connectwise.services.ticket_search import TicketQuery, TicketSearchResult
from mcp_server_connectwise.services.updates import TicketChanges, TicketUpdated
from mcp_server_connectwise.toolsets.definition import Hint, ToolCall, ToolDefinition, Toolset


async def search_tickets(call: ToolCall, query: TicketQuery) -> TicketSearchResult:
    """Find service tickets. Filters take names (any case), not ids, and combine with AND; a name that exists
    nowhere in the tenant is refused with the valid ones. Waiting on Customer for over 48 hours: status
    "Waiting on Customer", updated_before now minus 48 h. One ConnectWise request per call, plus reference
    lists not yet cached."""
    return await ticket_search.search_tickets(call.session, query)


def _search_hint(result: TicketSearchResult) -> Hint:
    if result.has_more:
        return Hint(f"More tickets match: call again with page={result.next_page}, or narrow the search.")
    if not result.tickets:
        return Hint("No ticket matches; loosen the filters (open_only=false includes closed tickets).", then=False)
    return Hint()


async def get_ticket_details(call: ToolCall, request: TicketDetailsRequest) -> TicketDetails:
    """Read one service ticket in full: its fields, notes (newest first; notes_page for older ones), time
    entries and configurations. Long texts are cut; the answer stays under 32 KB."""
    return await ticket_details.get_ticket_details(call.session, request)


def _details_hint(result: TicketDetails) -> Hint:
    if result.more_notes:
        return Hint(f"Older notes: call again with notes_page={result.next_notes_page}.")
    return Hint()


async def add_ticket_note(call: ToolCall, note: NoteRequest) -> NoteAdded:
    """Add a note to a service ticket. Notes are internal unless note_type says otherwise, so nothing reaches
    the customer by accident."""
    added = await notes.add_ticket_note(call.session, note)
    call.wrote("note", added.note_id, ticket_id=note.ticket_id, note_type=note.note_type, notify=note.notify)
    return added


async def update_ticket(call: ToolCall, changes: TicketChanges) -> TicketUpdated:
    """Change a service ticket's fields. Names are checked against its board before anything is sent (an
    invalid status is refused with the valid ones); only changed fields are written, each shown before -> after."""
    updated = await updates.update_ticket(call.session, changes)
    if updated.patched:
        call.wrote("ticket", changes.ticket_id, fields=[change.field for change in updated.changes])
    return updated


def _update_hint(result: TicketUpdated) -> Hint:
    return Hint() if result.patched else Hint("The ticket already had these values; nothing was sent.")


TOOLSET = Toolset(
    "tickets",
    "find, read, note and update service tickets",
    reads=(
        ToolDefinition(
            search_tickets,
            title="Search service tickets",
            read_only=True,
            idempotent=True,
            purpose="find tickets",
            provides=Look.FIND_TICKET,
            hint=_search_hint,
            examples=({"board": "Service Desk", "status": ["New", "In Progress"], "company": "Acme"},),
            next_tools=("get_ticket_details",),
            free_text=frozenset({"summary_contains", "contact"}),
        ),
        ToolDefinition(
            get_ticket_details,
            title="Read a service ticket",
            read_only=True,
            idempotent=True,
            purpose="read a ticket in full",
            provides=Look.READ_TICKET,
            hint=_details_hint,
            examples=({"ticket_id": 1003},),
            next_tools=("update_ticket", "add_ticket_note", "create_time_entry", "list_board_statuses"),
        ),
    ),
    writes=(
        ToolDefinition(
            add_ticket_note,
            title="Add a note to a ticket",
            read_only=False,
            purpose="write a note on it",
            examples=({"ticket_id": 1003, "text": "Rebooted the printer; monitoring.", "note_type": "internal"},),
            next_tools=("get_ticket_details", "update_ticket"),
            free_text=frozenset({"text"}),
            untrusted_output=False,
        ),
        ToolDefinition(
            update_ticket,
            title="Update a service ticket",
            read_only=False,
            destructive=True,
            idempotent=True,
            purpose="change its status or other fields",
            hint=_update_hint,
            examples=({"ticket_id": 1003, "status": "In Progress", "priority": "Priority 3 - Normal Response"},),
            next_tools=("add_ticket_note", "create_time_entry"),
            free_text=frozenset({"summary"}),
        ),
    ),
)
