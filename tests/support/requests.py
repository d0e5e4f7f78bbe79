"""Service requests as a test writes them: positional like the old call signatures, and built without the
argument models' own checks, so that a test reaches the service's checks behind them (defence in depth)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mcp_server_connectwise.services.notes import NoteRequest
from mcp_server_connectwise.services.ticket_details import TicketDetailsRequest
from mcp_server_connectwise.services.time_entries import TimeEntryRequest
from mcp_server_connectwise.services.time_sheets import TimeEntryChanges, TimeSheetQuery
from mcp_server_connectwise.services.updates import TicketChanges


def entry(ticket_id: int, start: datetime, **fields: Any) -> TimeEntryRequest:
    return TimeEntryRequest.model_construct(ticket_id=ticket_id, start=start, **fields)


def note(ticket_id: int, text: str, note_type: str = "internal", notify: bool = False) -> NoteRequest:
    return NoteRequest.model_construct(ticket_id=ticket_id, text=text, note_type=note_type, notify=notify)


def details(ticket_id: int, **fields: Any) -> TicketDetailsRequest:
    return TicketDetailsRequest.model_construct(ticket_id=ticket_id, **fields)


def changes(ticket_id: int, **fields: Any) -> TicketChanges:
    return TicketChanges.model_construct(ticket_id=ticket_id, **fields)


def time_sheet(**fields: Any) -> TimeSheetQuery:
    return TimeSheetQuery.model_construct(**fields)


def entry_changes(entry_id: int, **fields: Any) -> TimeEntryChanges:
    return TimeEntryChanges.model_construct(entry_id=entry_id, **fields)
