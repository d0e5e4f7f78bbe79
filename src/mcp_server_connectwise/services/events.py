"""ConnectWise's callbacks as events an agent can follow: a verified callback becomes one event with a compact,
sanitised summary of its record (`event_of`), and `get_ticket_events` reads them after a cursor.

An event says that a record changed and how it looked then; callbacks can repeat and arrive out of order
(API.md), so it is a prompt to read the record, not the record itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise.callbacks import CallbackPayload
from mcp_server_connectwise.connectwise.models import CWText, CWWholeNumber, Ticket, TimeEntry, label, read_moment
from mcp_server_connectwise.services.errors import Failed, Refused
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.state.events import CursorAhead, Event, EventFilter, EventLogUnavailable, NewEvent
from mcp_server_connectwise.untrusted import UntrustedText, clean_untrusted, one_line, untrusted_notice

MAX_EVENTS = 200  # per call
MAX_TYPES = 10
_SUMMARY_CHARS = 200  # a ticket summary has at most 100 characters, a company name 50: this is plenty
_TICKET_CHARGES = ("ServiceTicket", "ProjectTicket")


class _TimeEntry(TimeEntry):
    charge_to_id: CWWholeNumber = None
    charge_to_type: CWText = None
    ticket_board: CWText = None


def _text(value: str | None, *, untrusted: bool = False) -> str | None:
    if not value:
        return None
    return clean_untrusted(one_line(value), _SUMMARY_CHARS) if untrusted else one_line(value)[:_SUMMARY_CHARS]


def event_of(tenant: str, payload: CallbackPayload, received: datetime) -> NewEvent:
    """The event of a verified callback: for a ticket its summary, board, status, company and priority; for a
    time entry its ticket and hours; the time the record was last updated, and by whom."""
    record = payload.entity_record()
    fields: dict[str, Any] = {"by": _text(payload.member_id)}
    board = None
    if record is not None:
        updated = read_moment((record.get("_info") or {}).get("lastUpdated"))
        fields["updated"] = updated.isoformat() if updated else None
        if payload.type == "ticket":
            ticket = Ticket.model_validate(record)
            board = _text(label(ticket.board))
            fields |= {
                "summary": _text(ticket.summary, untrusted=True),
                "status": _text(label(ticket.status)),
                "priority": _text(label(ticket.priority)),
                "company": _text(label(ticket.company), untrusted=True),
            }
        elif payload.type == "time":
            entry = _TimeEntry.model_validate(record)
            board = _text(entry.ticket_board)
            fields |= {
                "ticket_id": entry.charge_to_id if entry.charge_to_type in _TICKET_CHARGES else None,
                "hours": entry.actual_hours,
            }
    return NewEvent(
        tenant=tenant,
        message_id=payload.message_id,
        type=payload.type,
        action=payload.action,
        record_id=payload.id,
        received=received,
        board=board,
        fields={name: value for name, value in fields.items() if value is not None},
    )


def _a_count(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


def _kinds(value: Any) -> Any:
    if isinstance(value, str):  # one type given as text
        value = [value]
    if isinstance(value, list):
        return [" ".join(kind.split()).lower() if isinstance(kind, str) else kind for kind in value]
    return value


EventKind = Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,49}(\.(added|updated|deleted))?$")]


class EventsQuery(BaseModel):
    since: Annotated[
        int | None,
        Field(ge=0, description="next_cursor of the last call; omit for the latest events."),
        BeforeValidator(_a_count),
    ] = None
    types: Annotated[
        list[EventKind] | None,
        Field(max_length=MAX_TYPES, description='e.g. ["ticket.added", "time"]; a type alone takes every action.'),
        BeforeValidator(_kinds),
    ] = None
    board: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    limit: Annotated[int, Field(ge=1, le=MAX_EVENTS), BeforeValidator(_a_count)] = 50


class TicketEvent(BaseModel):
    cursor: int
    type: str
    action: str
    id: int = Field(description="The record's id.")
    received: datetime
    updated: datetime | None = None
    by: str | None = None
    summary: UntrustedText | None = None
    board: str | None = None
    status: str | None = None
    priority: str | None = None
    company: UntrustedText | None = None
    ticket_id: int | None = None
    hours: float | None = None

    @classmethod
    def from_event(cls, event: Event) -> TicketEvent:
        return cls(
            cursor=event.cursor,
            type=event.type,
            action=event.action,
            id=event.record_id,
            received=event.received,
            board=event.board,
            **event.fields,
        )


class TicketEvents(BaseModel):
    tenant: str
    events: list[TicketEvent]
    next_cursor: int
    has_more: bool
    gap: bool | None = Field(None, description="Events after since were dropped unread (retention).")
    notice: str = untrusted_notice("summary and company")


def _filter(query: EventsQuery) -> EventFilter:
    board = " ".join(query.board.split()) if query.board else None
    return EventFilter(types=tuple(dict.fromkeys(query.types or ())), board=board or None)


async def get_ticket_events(session: TenantSession, query: EventsQuery) -> TicketEvents:
    log = session.events
    if log is None:
        raise Failed("This server keeps no event log, so it has no events to give.")
    match = _filter(query)
    try:
        if query.since is None:
            page = await log.latest(session.name, query.limit, match)
        else:
            page = await log.after(session.name, query.since, query.limit, match)
    except CursorAhead as ahead:
        raise Refused(
            f"since {ahead.cursor} is past tenant {session.name}'s newest event ({ahead.head}): it is not a "
            "cursor this server gave out, or its event store was replaced; call without since to start again."
        ) from None
    except EventLogUnavailable as exc:
        raise Failed(f"{exc} {exc.remedy}") from None
    return TicketEvents(
        tenant=session.name,
        events=[TicketEvent.from_event(event) for event in page.events],
        next_cursor=page.next_cursor,
        has_more=page.has_more,
        gap=page.gap or None,
    )
