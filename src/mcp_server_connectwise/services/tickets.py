"""Reading tickets: search (one request per call) and one ticket in full (one round of parallel requests)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import (
    AuthenticationError,
    ConnectWiseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)
from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.connectwise.models import (
    Configuration,
    ServiceNote,
    Ticket,
    TimeEntry,
    label,
    read_moment,
)
from mcp_server_connectwise.services import resolve
from mcp_server_connectwise.services.arguments import MAX_ID, NameOrNames, TicketId, When, not_a_yes_no
from mcp_server_connectwise.services.errors import Look, Refused, shown
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

OrderBy = Literal["newest", "oldest", "recently_updated", "least_recently_updated"]
# Entry order is id order, and every ConnectWise sorts by id (the entry date is kept under `_info`).
ORDER_BY: dict[str, str] = {
    "newest": "id desc",
    "oldest": "id asc",
    "recently_updated": "lastUpdated desc",
    "least_recently_updated": "lastUpdated asc",
}
# Only the columns a row shows: ConnectWise's full ticket is ~100 fields. A row stays small because a page
# of 25 must fit in 8 KB of JSON for the model: entry date and SLA text are left to the ticket's details.
SEARCH_FIELDS = (
    "id", "summary", "board/name", "status/name", "priority/name", "company/name", "contact/name",
    "owner/identifier", "requiredDate", "closedFlag", "_info/lastUpdated",
)
# Search text longer than this matches nothing: a ticket summary has at most 100 characters, a name at most 50.
MAX_SEARCH_TEXT = 100
# ConnectWise asks for URLs under ~2000 characters (API.md); host, path, fields, order and paging take ~400.
MAX_CONDITIONS_IN_URL = 1500
NOTES_PER_TICKET = 100
TIME_ENTRIES_PER_TICKET = 100
CONFIGURATIONS_PER_TICKET = 50


def ticket_not_found(session: TenantSession, ticket_id: int) -> Refused:
    return Refused(f"Ticket {ticket_id} was not found in tenant {session.name}; check the id.", look=Look.FIND_TICKET)


async def read_ticket(session: TenantSession, ticket_id: int) -> Ticket:
    try:
        return Ticket.model_validate(await session.client.get(endpoints.ticket(ticket_id)))
    except NotFoundError:
        raise ticket_not_found(session, ticket_id) from None


def _info_date(ticket: Ticket, key: str) -> datetime | None:
    """`dateEntered`/`lastUpdated` from the ticket's `_info`; None when absent or unreadable."""
    return read_moment(ticket.info.get(key))


# --- search ----------------------------------------------------------------------------------------


class TicketRow(BaseModel):
    id: int
    summary: UntrustedText | None = None
    board: str | None = None
    status: str | None = None
    priority: str | None = None
    company: UntrustedText | None = None
    contact: UntrustedText | None = None
    owner: str | None = Field(None, description="Owner's member identifier.")
    updated: datetime | None = None
    due: datetime | None = Field(None, description="Required date (due date) of the ticket.")
    closed: bool | None = Field(None, description="Present (true) only for closed tickets.")

    @classmethod
    def from_ticket(cls, ticket: Ticket) -> TicketRow:
        return cls(
            id=ticket.id,
            summary=ticket.summary,
            board=label(ticket.board),
            status=label(ticket.status),
            priority=label(ticket.priority),
            company=label(ticket.company),
            contact=label(ticket.contact) or ticket.contact_name,
            owner=ticket.owner.identifier if ticket.owner else None,
            updated=_info_date(ticket, "lastUpdated"),
            due=ticket.required_date,
            closed=True if ticket.closed_flag else None,  # every byte of a row is multiplied by the page size
        )


class TicketSearchResult(BaseModel):
    tenant: str
    tickets: list[TicketRow]
    page: int
    has_more: bool = Field(description="More tickets match: ask for next_page.")
    next_page: int | None = None
    notice: str = untrusted_notice("summary, company and contact")


class TicketQuery(BaseModel):
    """A ticket search: names, not ids, combined with AND."""

    board: Annotated[NameOrNames, Field(description='Board name or list of names, e.g. "Service Desk" (any case).')] = None
    status: Annotated[NameOrNames, Field(description='Status name or list, e.g. ["New", "In Progress"] (any case).')] = None
    company: Annotated[str | None, Field(description="Company name (or part of it) or company identifier.")] = None
    contact: Annotated[str | None, Field(description="Contact name or part of it.")] = None
    owner: Annotated[str | None, Field(description='Owner: member identifier, e.g. "jsmith", or part of a name.')] = None
    priority: Annotated[NameOrNames, Field(description='Priority name or list, e.g. "Priority 1 - Critical".')] = None
    summary_contains: Annotated[str | None, Field(description="Text the summary contains.")] = None
    entered_after: When = None
    entered_before: When = None
    updated_after: When = None
    open_only: Annotated[bool, Field(description="Only tickets that are not closed.")] = True
    order_by: OrderBy = "newest"
    limit: Annotated[int, Field(ge=1, le=100, description="Rows per page."), BeforeValidator(not_a_yes_no)] = 25
    page: Annotated[int, Field(ge=1, description="Page number, from next_page of an earlier call."),
                    BeforeValidator(not_a_yes_no)] = 1

    def names(self, argument: Literal["board", "status", "priority"]) -> tuple[str, ...]:
        value = getattr(self, argument)
        if value is None:
            return ()
        return (value,) if isinstance(value, str) else tuple(value)


def _one_of(field: str, names: Sequence[str]) -> cw.Expr | None:
    names = [resolve.collapse(name) for name in names if name.strip()]
    if not names:
        return None
    return cw.eq(field, names[0]) if len(names) == 1 else cw.in_(field, names)


def _text(value: str | None) -> str | None:
    return resolve.collapse(value) if value and value.strip() else None


def search_conditions(query: TicketQuery) -> cw.Expr | None:
    """The conditions for `query`; raises `UnsafeValueError` for text that cannot be expressed safely.

    ConnectWise compares text case-insensitively (SQL Server's default collation), so names go in as given.
    """
    company, contact, owner = _text(query.company), _text(query.contact), _text(query.owner)
    summary = _text(query.summary_contains)
    return cw.and_(
        _one_of("board/name", query.names("board")),
        _one_of("status/name", query.names("status")),
        _one_of("priority/name", query.names("priority")),
        cw.or_(cw.contains("company/name", company), cw.eq("company/identifier", company)) if company else None,
        cw.contains("contact/name", contact) if contact else None,
        cw.or_(cw.eq("owner/identifier", owner), cw.contains("owner/name", owner)) if owner else None,
        cw.contains("summary", summary) if summary else None,
        cw.ge("dateEntered", query.entered_after) if query.entered_after else None,
        cw.lt("dateEntered", query.entered_before) if query.entered_before else None,
        cw.ge("lastUpdated", query.updated_after) if query.updated_after else None,
        cw.eq("closedFlag", False) if query.open_only else None,
    )


def _checked_conditions(query: TicketQuery) -> cw.Expr | None:
    """The conditions for `query`, or a refusal, before any request, of a search that could match nothing or
    that ConnectWise could not take."""
    for argument in ("board", "status", "priority"):
        for name in query.names(argument):
            if name.strip():  # blank names are no filter
                resolve.name_or_id(argument, name)
    for argument in ("company", "contact", "owner", "summary_contains"):
        text = _text(getattr(query, argument)) or ""
        if len(text) > MAX_SEARCH_TEXT:
            raise Refused(
                f"{argument} is {len(text)} characters long; search text can have at most {MAX_SEARCH_TEXT} "
                "(longer matches no ticket), so shorten it."
            )
    for argument in ("entered_after", "entered_before", "updated_after"):
        if getattr(query, argument) is not None:
            resolve.moment(argument, getattr(query, argument))
    if query.page > MAX_ID:
        raise Refused(f"page {shown(query.page)} is past any result; use next_page from an earlier search.")
    try:
        conditions = search_conditions(query)
    except cw.UnsafeValueError as exc:
        raise Refused(f"{exc} Change the search and try again.") from None
    if conditions is not None and (size := len(quote(cw.serialize(conditions), safe=""))) > MAX_CONDITIONS_IN_URL:
        raise Refused(
            f"This search is too long for ConnectWise: its conditions take {size} characters of the URL, at most "
            f"{MAX_CONDITIONS_IN_URL}; give fewer names or shorter text, or search in several calls."
        )
    return conditions


async def search_tickets(session: TenantSession, query: TicketQuery) -> TicketSearchResult:
    conditions = _checked_conditions(query)
    page = await session.client.get_page(
        endpoints.TICKETS,
        conditions=conditions,
        order_by=ORDER_BY[query.order_by],
        fields=SEARCH_FIELDS,
        page=query.page,
        page_size=query.limit,
    )
    rows = [TicketRow.from_ticket(Ticket.model_validate(item)) for item in page.items]
    return TicketSearchResult(
        tenant=session.name,
        tickets=rows,
        page=page.page,
        has_more=page.has_next,
        next_page=page.page + 1 if page.has_next else None,
    )


# --- details ----------------------------------------------------------------------------------------

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
    section: NoteSection = Field(description="discussion and resolution notes are visible to the customer; internal ones are not.")
    author: UntrustedText | None = None
    created: datetime | None = None
    text: UntrustedText

    @classmethod
    def from_note(cls, note: ServiceNote) -> NoteView:
        author = note.member.identifier or note.member.name if note.member else None
        if author is None and note.contact is not None:
            author = note.contact.name
        return cls(
            id=note.id, section=note_section(note), author=author or note.created_by,
            created=note.date_created, text=note.text or "",
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
            start=entry.time_start, end=entry.time_end, hours=entry.actual_hours,
            billable=entry.billable_option, work_type=label(entry.work_type), notes=entry.notes,
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
    description: UntrustedText | None = Field(None, description="The ticket's initial description (its first discussion note).")
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
    more_notes: bool = Field(False, description=f"The ticket has more than {NOTES_PER_TICKET} notes; only the oldest are shown.")
    time_entries: list[TimeEntryView] | None = None
    configurations: list[ConfigurationView] | None = Field(None, description="None when not requested or not available.")
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


def _configurations_refused(answer: object) -> bool:
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
        requests["time"] = client.get_page(endpoints.TIME_ENTRIES, conditions=_time_entry_conditions(ticket_id),
                                           order_by="timeStart asc", page_size=TIME_ENTRIES_PER_TICKET)
    if include_configurations:
        requests["configurations"] = client.get_page(endpoints.ticket_configurations(ticket_id),
                                                     page_size=CONFIGURATIONS_PER_TICKET)
    answers = dict(zip(requests, await asyncio.gather(*requests.values(), return_exceptions=True)))
    if isinstance(answers["ticket"], NotFoundError):
        raise ticket_not_found(session, ticket_id)
    configurations_unavailable = None
    if _configurations_refused(answers.get("configurations")):
        # The ticket was readable, so it is this endpoint that is refused (not every ConnectWise, nor every
        # double of it, serves it): leave the configurations out rather than fail the whole read.
        configurations_unavailable = (
            f"ConnectWise would not list the ticket's configurations (HTTP {answers['configurations'].status}); "
            "they are left out."
        )
        answers["configurations"] = None
    for answer in answers.values():
        if isinstance(answer, BaseException):
            raise answer

    ticket = Ticket.model_validate(answers["ticket"])
    notes = [ServiceNote.model_validate(item) for item in answers["notes"].items]
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
        if ticket.contact or ticket.contact_name else None,
        owner=ticket.owner.identifier if ticket.owner else None,
        entered=_info_date(ticket, "dateEntered"),
        updated=_info_date(ticket, "lastUpdated"),
        due=ticket.required_date,
        sla=ticket.sla_status,
        closed=ticket.closed_flag,
        budget_hours=ticket.budget_hours,
        actual_hours=ticket.actual_hours,
        notes=[NoteView.from_note(note) for note in notes] if include_notes else None,
        more_notes=answers["notes"].has_next,
        time_entries=[TimeEntryView.from_entry(TimeEntry.model_validate(item)) for item in answers["time"].items]
        if include_time else None,
        configurations=[ConfigurationView.from_configuration(Configuration.model_validate(item))
                        for item in answers["configurations"].items] if answers.get("configurations") else None,
        configurations_unavailable=configurations_unavailable,
    )
