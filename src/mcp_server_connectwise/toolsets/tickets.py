"""Toolset `tickets`: find, read, create, note and update service tickets, and the devices on them."""

from __future__ import annotations

from mcp_server_connectwise.services import notes, ticket_create, ticket_details, ticket_devices, ticket_search, updates
from mcp_server_connectwise.services.errors import Look
from mcp_server_connectwise.services.notes import NoteAdded, NoteRequest
from mcp_server_connectwise.services.ticket_create import NewTicket, TicketCreated
from mcp_server_connectwise.services.ticket_details import TicketDetails, TicketDetailsRequest
from mcp_server_connectwise.services.ticket_devices import DeviceChange, DeviceOnTicket
from mcp_server_connectwise.services.ticket_search import TicketQuery, TicketSearchResult
from mcp_server_connectwise.services.updates import TicketChanges, TicketUpdated
from mcp_server_connectwise.toolsets.definition import Hint, ToolCall, ToolDefinition, Toolset


async def search_tickets(call: ToolCall, query: TicketQuery) -> TicketSearchResult:
    """Find service tickets. Filters take names, not ids, and combine with AND; a name the tenant has nowhere is
    refused with the valid ones. Waiting on Customer for over 48 hours: status "Waiting on Customer",
    updated_before now minus 48 h. One ConnectWise request per call, plus reference lists not yet cached."""
    return await ticket_search.search_tickets(call.session, query)


def _search_hint(result: TicketSearchResult) -> Hint:
    if result.has_more:
        return Hint(f"More tickets match: call again with page={result.next_page}, or narrow the search.")
    if not result.tickets:
        return Hint("No ticket matches; loosen the filters (open_only=false includes closed tickets).", then=False)
    return Hint()


async def get_ticket_details(call: ToolCall, request: TicketDetailsRequest) -> TicketDetails:
    """Read a service ticket in full: fields, notes (newest first, by page), time entries, configurations.
    Long texts are cut; the answer stays under 32 KB."""
    return await ticket_details.get_ticket_details(call.session, request)


def _details_hint(result: TicketDetails) -> Hint:
    if result.more_notes:
        return Hint(f"Older notes: call again with notes_page={result.next_notes_page}.")
    return Hint()


async def add_ticket_note(call: ToolCall, note: NoteRequest) -> NoteAdded:
    """Add a note to a service ticket: internal (staff only) unless note_type says otherwise."""
    added = await notes.add_ticket_note(call.session, note)
    call.wrote("note", added.note_id, ticket_id=note.ticket_id, note_type=note.note_type, notify=note.notify)
    return added


async def update_ticket(call: ToolCall, changes: TicketChanges) -> TicketUpdated:
    """Change a service ticket's fields. Names are checked against its board first (an invalid status is refused
    with the valid ones); only changed fields are written, each shown before -> after."""
    updated = await updates.update_ticket(call.session, changes)
    if updated.patched:
        call.wrote("ticket", changes.ticket_id, fields=[change.field for change in updated.changes])
    return updated


def _update_hint(result: TicketUpdated) -> Hint:
    return Hint() if result.patched else Hint("The ticket already had these values; nothing was sent.")


async def create_ticket(call: ToolCall, ticket: NewTicket) -> TicketCreated:
    """Open a service ticket for a company. Every name is checked before anything is sent; notifications are
    off unless notify. Similar open tickets of the company from the last 14 days stop it (possible_duplicates)
    unless allow_duplicate."""
    created = await ticket_create.create_ticket(call.session, ticket)
    if created.ticket_id is not None:
        call.wrote("ticket", created.ticket_id, created=True, company=created.company_identifier)
    return created


def _create_hint(result: TicketCreated) -> Hint:
    if not result.created:
        # The next tools (reading a ticket, noting on it) are what a duplicate calls for.
        return Hint(
            "Nothing was created: similar open tickets exist (possible_duplicates). Work on the right one, or call "
            "again with allow_duplicate=true if this is a different problem."
        )
    return Hint()


async def attach_configuration(call: ToolCall, device: DeviceOnTicket) -> DeviceChange:
    """Attach a configuration (device) of the ticket's company to the ticket; one already attached is left as it
    is (changed=false)."""
    changed = await ticket_devices.attach_configuration(call.session, device)
    if changed.changed:
        call.wrote("ticket_configuration", changed.configuration_id, ticket_id=device.ticket_id)
    return changed


async def detach_configuration(call: ToolCall, device: DeviceOnTicket) -> DeviceChange:
    """Detach a configuration (device) from the ticket; the configuration itself stays. One not attached is
    reported as changed=false."""
    changed = await ticket_devices.detach_configuration(call.session, device)
    if changed.changed:
        call.wrote("ticket_configuration", changed.configuration_id, ticket_id=device.ticket_id, detached=True)
    return changed


TOOLSET = Toolset(
    "tickets",
    "find, read, note and update service tickets",
    reads=(
        ToolDefinition(
            search_tickets,
            title="Search service tickets",
            read_only=True,
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
        ToolDefinition(
            create_ticket,
            title="Create a service ticket",
            read_only=False,
            purpose="open a ticket",
            hint=_create_hint,
            examples=(
                {
                    "company": "ACME",
                    "summary": "Front-desk printer is jammed",
                    "contact": "bjorn.angstrom@acme.example",
                    "configurations": ["ACME-WS-014"],
                },
            ),
            next_tools=("get_ticket_details", "add_ticket_note", "attach_configuration"),
            free_text=frozenset({"summary", "description", "internal_note"}),
        ),
        ToolDefinition(
            attach_configuration,
            title="Attach a device to a ticket",
            read_only=False,
            idempotent=True,
            purpose="attach a device to it",
            examples=({"ticket_id": 1003, "configuration": "SMITHJON-PRN01"},),
            next_tools=("get_ticket_details",),
        ),
        ToolDefinition(
            detach_configuration,
            title="Detach a device from a ticket",
            read_only=False,
            destructive=True,
            idempotent=True,
            purpose="detach a device from it",
            examples=({"ticket_id": 1005, "configuration": "TOKYOTRA-WS-014"},),
            next_tools=("get_ticket_details",),
        ),
    ),
)
