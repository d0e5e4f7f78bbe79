"""Ticket tools: search, read, note, update."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import BeforeValidator, Field

from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.services import notes, resolve, tickets, updates
from mcp_server_connectwise.services.errors import Refused
from mcp_server_connectwise.services.notes import NoteAdded, NoteType
from mcp_server_connectwise.services.tickets import OrderBy, TicketDetails, TicketQuery, TicketSearchResult
from mcp_server_connectwise.services.updates import Level, TicketChanges, TicketUpdated
from mcp_server_connectwise.tools.base import ToolCall, ToolDefinition

# Search text longer than this matches nothing: a ticket summary has at most 100 characters, a name at most 50.
MAX_SEARCH_TEXT = 100
# ConnectWise asks for URLs under ~2000 characters (API.md); host, path, fields, order and paging take ~400.
MAX_CONDITIONS_IN_URL = 1500

_NUMBER = re.compile(r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*")


def not_a_yes_no(value: Any) -> Any:
    """Before validation: pydantic would read a JSON true/false as the number 1/0, i.e. ticket or status 1."""
    if isinstance(value, bool):
        raise ValueError("expected a number or a name, not true or false")
    return value


def iso_text(value: Any) -> Any:
    """Before validation: pydantic would read a number (or a string of digits) as seconds since 1970."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 date-time with a time zone, e.g. 2026-01-31T09:00:00Z, not a number")
    return value


# The validators leave the input schema as it was: they only refuse what pydantic would otherwise coerce.
TicketId = Annotated[int, Field(ge=1, description="The ticket number, e.g. 123456."), BeforeValidator(not_a_yes_no)]
NameOrNames = str | list[str] | None
NameOrId = Annotated[str | int | None, BeforeValidator(not_a_yes_no)]
When = Annotated[datetime | None, Field(description="ISO 8601 with a time zone, e.g. 2026-01-31T09:00:00Z."),
                 BeforeValidator(iso_text)]


def _names(value: NameOrNames) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _check_search(query: TicketQuery) -> None:
    """Refuse, before any request, a search that could match nothing or that ConnectWise could not take."""
    for argument in ("board", "status", "priority"):
        for name in getattr(query, argument):
            if name.strip():  # blank names are no filter
                resolve.name_or_id(argument, name)
    for argument in ("company", "contact", "owner", "summary_contains"):
        text = " ".join((getattr(query, argument) or "").split())
        if len(text) > MAX_SEARCH_TEXT:
            raise Refused(
                f"{argument} is {len(text)} characters long; search text can have at most {MAX_SEARCH_TEXT} "
                "(longer matches no ticket), so shorten it."
            )
    for argument in ("entered_after", "entered_before", "updated_after"):
        if getattr(query, argument) is not None:
            resolve.moment(argument, getattr(query, argument))
    if query.page > resolve.MAX_ID:
        raise Refused(f"page {resolve.shown(query.page)} is past any result; use next_page from an earlier search.")
    try:
        conditions = tickets.search_conditions(query)
    except cw.UnsafeValueError:
        return  # the search service refuses it with the reason, before any request
    if conditions is not None and (size := len(quote(cw.serialize(conditions), safe=""))) > MAX_CONDITIONS_IN_URL:
        raise Refused(
            f"This search is too long for ConnectWise: its conditions take {size} characters of the URL, at most "
            f"{MAX_CONDITIONS_IN_URL}; give fewer names or shorter text, or search in several calls."
        )


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
    _check_search(query)
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
