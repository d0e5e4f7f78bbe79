"""Time tools: log time against a ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator, Field

from mcp_server_connectwise.services import resolve, time_entries
from mcp_server_connectwise.services.time_entries import BillableOption, TimeEntryCreated, TimeEntryRequest
from mcp_server_connectwise.tools.arguments import TicketId, iso_text, not_a_yes_no
from mcp_server_connectwise.tools.base import ToolCall, ToolDefinition


async def create_time_entry(
    call: ToolCall,
    ticket_id: TicketId,
    start: Annotated[datetime, Field(description="When the work started, ISO 8601 with a time zone, e.g. 2026-01-31T09:00:00Z."),
                     BeforeValidator(iso_text)],
    end: Annotated[datetime | None, Field(description="When it ended, with a time zone. Give end or hours."),
                   BeforeValidator(iso_text)] = None,
    hours: Annotated[float | None, Field(gt=0, le=24, description="Hours worked from start, instead of end."),
                     BeforeValidator(not_a_yes_no)] = None,
    notes: Annotated[str | None, Field(description="What was done (customer-visible on invoices).")] = None,
    member: Annotated[str | None, Field(description="Member identifier to log for; default: the tenant's configured member.")] = None,
    work_type: Annotated[str | None, Field(description='Work type name, e.g. "Remote Support".')] = None,
    billable_option: BillableOption | None = None,
    internal_notes: Annotated[str | None, Field(description="Notes for staff only.")] = None,
) -> TimeEntryCreated:
    """Log time worked on a service ticket (charged to the ticket), at most 24 hours per entry.

    Refused when the ticket's status does not allow time entries. Give end or hours.
    Example: {"ticket_id": 123456, "start": "2026-01-31T09:00:00+01:00", "hours": 0.5, "notes": "Reset the VPN token."}.
    """
    request = TimeEntryRequest(
        ticket_id=resolve.ticket_id(ticket_id), start=start, end=end, hours=hours, notes=notes, member=member,
        work_type=work_type, billable_option=billable_option, internal_notes=internal_notes,
    )
    created = await time_entries.create_time_entry(call.session, request)
    call.wrote("time_entry", created.time_entry_id, ticket_id=ticket_id, hours=created.hours)
    return created


TOOLS = [
    ToolDefinition(create_time_entry, title="Log time on a ticket", toolset="time", read_only=False,
                   free_text=frozenset({"notes", "internal_notes"}), untrusted_output=False),
]
