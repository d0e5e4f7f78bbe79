"""Toolset `time`: log time against a ticket, read a time sheet back, correct an entry."""

from __future__ import annotations

from mcp_server_connectwise.services import time_entries, time_sheets
from mcp_server_connectwise.services.errors import Look
from mcp_server_connectwise.services.time_entries import TimeEntryCreated, TimeEntryRequest
from mcp_server_connectwise.services.time_sheets import TimeEntryChanges, TimeEntryUpdated, TimeSheet, TimeSheetQuery
from mcp_server_connectwise.toolsets.definition import Hint, ToolCall, ToolDefinition, Toolset


async def list_time_entries(call: ToolCall, query: TimeSheetQuery) -> TimeSheet:
    """List a member's time entries or a ticket's, with hours per day and billable totals: at most 31 days,
    this week by default (a ticket alone: all its time). Open, Rejected and ErrorsCorrected entries can be
    corrected."""
    return await time_sheets.list_time_entries(call.session, query)


def _list_hint(result: TimeSheet) -> Hint:
    if result.more:
        return Hint(f"Only the first {time_sheets.MAX_ENTRIES} entries are listed and totalled: narrow the dates.")
    if not result.entries:
        return Hint("No time entries match; check the member, ticket and dates.", then=False)
    return Hint()


async def create_time_entry(call: ToolCall, entry: TimeEntryRequest) -> TimeEntryCreated:
    """Log time on a service ticket: at most 24 hours an entry; give end, hours or minutes. Refused on a status that
    forbids time, for a start in the future, and for the member, start and end of an entry already logged
    (unless allow_duplicate)."""
    created = await time_entries.create_time_entry(call.session, entry)
    call.wrote("time_entry", created.time_entry_id, ticket_id=entry.ticket_id, hours=created.hours)
    return created


async def update_time_entry(call: ToolCall, changes: TimeEntryChanges) -> TimeEntryUpdated:
    """Correct a time entry still Open, Rejected or ErrorsCorrected (one in approval or billed is refused).
    Times are checked as create_time_entry checks them; only changed fields are written, each shown before ->
    after."""
    updated = await time_sheets.update_time_entry(call.session, changes)
    if updated.patched:
        call.wrote("time_entry", changes.entry_id, fields=[change.field for change in updated.changes])
    return updated


def _update_hint(result: TimeEntryUpdated) -> Hint:
    return Hint() if result.patched else Hint("The entry already had these values; nothing was sent.")


TOOLSET = Toolset(
    "time",
    "log, list and correct time",
    reads=(
        ToolDefinition(
            list_time_entries,
            title="List time entries",
            read_only=True,
            purpose="read the time sheet back",
            provides=Look.LIST_TIME,
            hint=_list_hint,
            examples=({"member": "akowalski", "date_from": "2026-10-26"},),
            next_tools=("update_time_entry", "get_ticket_details"),
        ),
    ),
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
        ToolDefinition(
            update_time_entry,
            title="Correct a time entry",
            read_only=False,
            destructive=True,
            idempotent=True,
            purpose="correct an entry",
            hint=_update_hint,
            # Entry 25 is one the sandbox's approver sent back (Rejected), whatever the seed's size.
            examples=({"entry_id": 25, "notes": "Reset the VPN token and confirmed the user can connect."},),
            next_tools=("list_time_entries",),
            free_text=frozenset({"notes"}),
        ),
    ),
)
