"""One ticket in full: the ticket, its notes, time entries and configurations in one round of parallel requests."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import BaseModel, Field

from mcp_server_connectwise.connectwise import (
    AuthenticationError,
    ConnectWiseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    endpoints,
)
from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise.models import (
    Configuration,
    ServiceNote,
    Ticket,
    TimeEntry,
    label,
)
from mcp_server_connectwise.services.arguments import TicketId
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.tickets import info_date, ticket_not_found
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

NOTES_PER_TICKET = 100
TIME_ENTRIES_PER_TICKET = 100
CONFIGURATIONS_PER_TICKET = 50


NoteSection = Literal["discussion", "internal", "resolution", "other"]


def note_section(note: ServiceNote) -> NoteSection:
    if note.detail_description_flag:
        return "discussion"
    if note.internal_analysis_flag:
        return "internal"
    if note.resolution_flag:
        return "resolution"
    return "other"


class NoteView(BaseModel):
    id: int
    section: NoteSection = Field(
        description="discussion and resolution notes are visible to the customer; internal ones are not."
    )
    author: UntrustedText | None = None
    created: datetime | None = None
    text: UntrustedText

    @classmethod
    def from_note(cls, note: ServiceNote) -> NoteView:
        author = note.member.identifier or note.member.name if note.member else None
        if author is None and note.contact is not None:
            author = note.contact.name
        return cls(
            id=note.id,
            section=note_section(note),
            author=author or note.created_by,
            created=note.date_created,
            text=note.text or "",
        )


class TimeEntryView(BaseModel):
    id: int
    member: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    hours: float | None = None
    billable: str | None = None
    work_type: str | None = None
    notes: UntrustedText | None = None

    @classmethod
    def from_entry(cls, entry: TimeEntry) -> TimeEntryView:
        return cls(
            id=entry.id,
            member=entry.member.identifier or entry.member.name if entry.member else None,
            start=entry.time_start,
            end=entry.time_end,
            hours=entry.actual_hours,
            billable=entry.billable_option,
            work_type=label(entry.work_type),
            notes=entry.notes,
        )


class ConfigurationView(BaseModel):
    """What a ticket's configuration reference carries."""

    id: int
    name: UntrustedText | None = None
    type: str | None = None

    @classmethod
    def from_configuration(cls, item: Configuration) -> ConfigurationView:
        return cls(id=item.id, name=item.name, type=label(item.type))


class ContactView(BaseModel):
    name: UntrustedText | None = None
    email: UntrustedText | None = None


class TicketDetails(BaseModel):
    tenant: str
    id: int
    summary: UntrustedText | None = None
    description: UntrustedText | None = Field(
        None, description="The ticket's initial description (its first discussion note)."
    )
    board: str | None = None
    status: str | None = None
    priority: str | None = None
    type: str | None = None
    subtype: str | None = None
    item: str | None = None
    severity: str | None = None
    impact: str | None = None
    company: UntrustedText | None = None
    company_identifier: str | None = None
    contact: ContactView | None = None
    owner: str | None = None
    entered: datetime | None = None
    updated: datetime | None = None
    due: datetime | None = None
    sla: str | None = None
    closed: bool | None = None
    budget_hours: float | None = None
    actual_hours: float | None = None
    notes: list[NoteView] | None = Field(
        None, description="Oldest first, after the description; None when not requested."
    )
    more_notes: bool = Field(
        False, description=f"The ticket has more than {NOTES_PER_TICKET} notes; only the oldest are shown."
    )
    time_entries: list[TimeEntryView] | None = None
    configurations: list[ConfigurationView] | None = Field(
        None, description="None when not requested or not available."
    )
    configurations_unavailable: str | None = Field(
        None, description="Why the configurations asked for are left out: ConnectWise would not list them."
    )
    notice: str = untrusted_notice(
        "summary, description, company, contact, notes[].text and author, time_entries[].notes, configurations[].name"
    )


def _time_entry_conditions(ticket_id: int) -> cw.Expr | None:
    return cw.and_(
        cw.or_(cw.eq("chargeToType", "ServiceTicket"), cw.eq("chargeToType", "ProjectTicket")),
        cw.eq("chargeToId", ticket_id),
    )


def _configurations_refused(answer: object) -> TypeGuard[ConnectWiseError]:
    """Whether the configurations request was refused for what it asked, rather than failing for a reason that
    fails the whole read (keys, permissions, throttling, ConnectWise down or unreachable)."""
    return (
        isinstance(answer, ConnectWiseError)
        and answer.status is not None
        and not isinstance(answer, (AuthenticationError, PermissionDeniedError, RateLimitedError, ServerError))
    )


class TicketDetailsRequest(BaseModel):
    ticket_id: TicketId
    include_notes: bool = True
    include_time: Annotated[bool, Field(description="Include the ticket's time entries.")] = True
    include_configurations: Annotated[bool, Field(description="Include the configurations (devices) attached.")] = True


async def get_ticket_details(session: TenantSession, request: TicketDetailsRequest) -> TicketDetails:
    """The ticket and what hangs off it, fetched in one round of concurrent requests."""
    ticket_id = request.ticket_id
    include_notes, include_time = request.include_notes, request.include_time
    include_configurations = request.include_configurations
    client = session.client
    # Notes are always read: the description is the first discussion note.
    requests: dict[str, Any] = {
        "ticket": client.get(endpoints.ticket(ticket_id)),
        "notes": client.get_page(endpoints.ticket_notes(ticket_id), order_by="id asc", page_size=NOTES_PER_TICKET),
    }
    if include_time:
        requests["time"] = client.get_page(
            endpoints.TIME_ENTRIES,
            conditions=_time_entry_conditions(ticket_id),
            order_by="timeStart asc",
            page_size=TIME_ENTRIES_PER_TICKET,
        )
    if include_configurations:
        requests["configurations"] = client.get_page(
            endpoints.ticket_configurations(ticket_id), page_size=CONFIGURATIONS_PER_TICKET
        )
    answers = dict(zip(requests, await asyncio.gather(*requests.values(), return_exceptions=True), strict=True))
    if isinstance(answers["ticket"], NotFoundError):
        raise ticket_not_found(session, ticket_id)
    configurations_unavailable = None
    if _configurations_refused(refused := answers.get("configurations")):
        # The ticket was readable, so it is this endpoint that is refused (not every ConnectWise, nor every
        # double of it, serves it): leave the configurations out rather than fail the whole read.
        configurations_unavailable = (
            f"ConnectWise would not list the ticket's configurations (HTTP {refused.status}); they are left out."
        )
        answers["configurations"] = None
    results: dict[str, Any] = {}
    for name, answer in answers.items():
        if isinstance(answer, BaseException):
            raise answer
        results[name] = answer

    ticket = Ticket.model_validate(results["ticket"])
    notes = [ServiceNote.model_validate(item) for item in results["notes"].items]
    # ConnectWise keeps the initial description as the first discussion note: shown once, as description.
    description_note = next((note for note in notes if note.detail_description_flag), None)
    if description_note is not None:
        notes.remove(description_note)
    return TicketDetails(
        tenant=session.name,
        id=ticket.id,
        summary=ticket.summary,
        description=ticket.initial_description or (description_note.text if description_note else None),
        board=label(ticket.board),
        status=label(ticket.status),
        priority=label(ticket.priority),
        type=label(ticket.type),
        subtype=label(ticket.sub_type),
        item=label(ticket.item),
        severity=ticket.severity,
        impact=ticket.impact,
        company=label(ticket.company),
        company_identifier=ticket.company.identifier if ticket.company else None,
        contact=ContactView(name=label(ticket.contact) or ticket.contact_name, email=ticket.contact_email_address)
        if ticket.contact or ticket.contact_name
        else None,
        owner=ticket.owner.identifier if ticket.owner else None,
        entered=info_date(ticket, "dateEntered"),
        updated=info_date(ticket, "lastUpdated"),
        due=ticket.required_date,
        sla=ticket.sla_status,
        closed=ticket.closed_flag,
        budget_hours=ticket.budget_hours,
        actual_hours=ticket.actual_hours,
        notes=[NoteView.from_note(note) for note in notes] if include_notes else None,
        more_notes=results["notes"].has_next,
        time_entries=[TimeEntryView.from_entry(TimeEntry.model_validate(item)) for item in results["time"].items]
        if include_time
        else None,
        configurations=[
            ConfigurationView.from_configuration(Configuration.model_validate(item))
            for item in results["configurations"].items
        ]
        if results.get("configurations")
        else None,
        configurations_unavailable=configurations_unavailable,
    )
