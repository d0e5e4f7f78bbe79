"""Ticket tools: search, read, note, update."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from mcp_server_connectwise.services import notes, resolve, tickets, updates
from mcp_server_connectwise.services.notes import NoteAdded, NoteType
from mcp_server_connectwise.services.tickets import OrderBy, TicketDetails, TicketQuery, TicketSearchResult
from mcp_server_connectwise.services.updates import Level, TicketChanges, TicketUpdated
from mcp_server_connectwise.tools.arguments import NameOrId, NameOrNames, TicketId, When, not_a_yes_no
from mcp_server_connectwise.tools.base import ToolCall, ToolDefinition


def _names(value: NameOrNames) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


async def search_tickets(
    call: ToolCall,
    board: Annotated[NameOrNames, Field(description='Board name or list of names, e.g. "Service Desk" (any case).')] = None,
    status: Annotated[NameOrNames, Field(description='Status name or list, e.g. ["New", "In Progress"] (any case).')] = None,
    company: Annotated[str | None, Field(description="Company name (or part of it) or company identifier.")] = None,
    contact: Annotated[str | None, Field(description="Contact name or part of it.")] = None,
    owner: Annotated[str | None, Field(description='Owner: member identifier, e.g. "jsmith", or part of a name.')] = None,
    priority: Annotated[NameOrNames, Field(description='Priority name or list, e.g. "Priority 1 - Critical".')] = None,
    summary_contains: Annotated[str | None, Field(description="Text the summary contains.")] = None,
    entered_after: When = None,
    entered_before: When = None,
    updated_after: When = None,
    open_only: Annotated[bool, Field(description="Only tickets that are not closed.")] = True,
    order_by: OrderBy = "newest",
    limit: Annotated[int, Field(ge=1, le=100, description="Rows per page."), BeforeValidator(not_a_yes_no)] = 25,
    page: Annotated[int, Field(ge=1, description="Page number, from next_page of an earlier call."),
                    BeforeValidator(not_a_yes_no)] = 1,
) -> TicketSearchResult:
    """Find service tickets by board, status, company, contact, owner, priority, summary text and dates.

    Filters take names, not ids, and combine with AND. Returns compact rows (id, summary, board, status,
    priority, company, contact, owner, last update, due date) and has_more/next_page; one ConnectWise
    request per call. Example: {"board": "Service Desk", "status": ["New", "In Progress"], "company": "Acme"}.
    Then read a ticket with get_ticket_details.
    """
    query = TicketQuery(
        board=_names(board), status=_names(status), priority=_names(priority), company=company, contact=contact,
        owner=owner, summary_contains=summary_contains, entered_after=entered_after, entered_before=entered_before,
        updated_after=updated_after, open_only=open_only, order_by=order_by, limit=limit, page=page,
    )
    return await tickets.search_tickets(call.session, query)


async def get_ticket_details(
    call: ToolCall,
    ticket_id: TicketId,
    include_notes: bool = True,
    include_time: Annotated[bool, Field(description="Include the ticket's time entries.")] = True,
    include_configurations: Annotated[bool, Field(description="Include the configurations (devices) attached.")] = True,
) -> TicketDetails:
    """Read one service ticket in full: summary, description, status, company, contact, owner, dates, notes
    (section, author, date), time entries and configurations.

    Example: {"ticket_id": 123456}. Then use update_ticket, add_ticket_note or create_time_entry.
    """
    return await tickets.get_ticket_details(
        call.session, resolve.ticket_id(ticket_id), include_notes=include_notes, include_time=include_time,
        include_configurations=include_configurations,
    )


async def add_ticket_note(
    call: ToolCall,
    ticket_id: TicketId,
    text: Annotated[str, Field(min_length=1, description="The note's text.")],
    note_type: Annotated[NoteType, Field(
        description="internal (default; staff only), discussion (customer-visible) or resolution (customer-visible)."
    )] = "internal",
    notify: Annotated[bool, Field(description="Let ConnectWise send its notification emails for this note.")] = False,
) -> NoteAdded:
    """Add a note to a service ticket. Notes are internal unless note_type says otherwise, so nothing reaches
    the customer by accident.

    Example: {"ticket_id": 123456, "text": "Rebooted the printer; monitoring.", "note_type": "internal"}.
    """
    added = await notes.add_ticket_note(call.session, resolve.ticket_id(ticket_id), text, note_type, notify)
    call.wrote("note", added.note_id, ticket_id=ticket_id, note_type=note_type, notify=notify)
    return added


async def update_ticket(
    call: ToolCall,
    ticket_id: TicketId,
    status: Annotated[NameOrId, Field(description='Status name on the ticket\'s board (or the new board), e.g. "Waiting on Client".')] = None,
    priority: Annotated[NameOrId, Field(description="Priority name.")] = None,
    board: Annotated[NameOrId, Field(description="Board name, to move the ticket; without status it gets the board's default status.")] = None,
    owner: Annotated[NameOrId, Field(description='Owner: member identifier, e.g. "jsmith".')] = None,
    summary: Annotated[str | None, Field(max_length=100, description="New summary (at most 100 characters).")] = None,
    type: Annotated[NameOrId, Field(description="Type name on the board.")] = None,
    subtype: Annotated[NameOrId, Field(description="Subtype name on the board.")] = None,
    item: Annotated[NameOrId, Field(description="Item name on the board.")] = None,
    severity: Level | None = None,
    impact: Level | None = None,
    required_date: When = None,
    budget_hours: Annotated[float | None, Field(ge=0, description="Budgeted hours."), BeforeValidator(not_a_yes_no)] = None,
) -> TicketUpdated:
    """Change fields of a service ticket: status, priority, board, owner, summary, type, subtype, item,
    severity, impact, required date, budget hours.

    Names are checked against the ticket's board before anything is sent; an invalid status is refused with
    the valid ones (list_board_statuses shows them). Only changed fields are written; the answer shows each
    change before -> after. Example: {"ticket_id": 123456, "status": "Waiting on Client", "priority": "Priority 3 - Normal"}.
    """
    changes = TicketChanges(
        status=status, priority=priority, board=board, owner=owner, summary=summary, type=type, subtype=subtype,
        item=item, severity=severity, impact=impact, required_date=required_date, budget_hours=budget_hours,
    )
    updated = await updates.update_ticket(call.session, resolve.ticket_id(ticket_id), changes)
    if updated.patched:
        call.wrote("ticket", ticket_id, fields=[change.field for change in updated.changes])
    return updated


TOOLS = [
    ToolDefinition(search_tickets, title="Search service tickets", toolset="tickets", read_only=True,
                   idempotent=True, free_text=frozenset({"summary_contains", "contact"})),
    ToolDefinition(get_ticket_details, title="Read a service ticket", toolset="tickets", read_only=True,
                   idempotent=True),
    ToolDefinition(add_ticket_note, title="Add a note to a ticket", toolset="tickets", read_only=False,
                   free_text=frozenset({"text"}), untrusted_output=False),
    ToolDefinition(update_ticket, title="Update a service ticket", toolset="tickets", read_only=False,
                   destructive=True, idempotent=True, free_text=frozenset({"summary"})),
]
