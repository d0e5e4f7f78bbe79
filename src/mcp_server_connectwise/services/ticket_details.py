"""One ticket in full: the ticket, a page of its notes (newest first), its time entries and configurations in
one round of parallel requests, bounded in size.

The description is ConnectWise's `initialDescription` when the ticket shows it, else the ticket's first
discussion note: found on the page of notes read when that page holds the oldest notes, else by one more
request for that note alone. Each text is cut to a length a reader can take in (a note says it was cut, and how
long it is), and the whole answer to `MAX_RESULT_BYTES` of JSON: the oldest notes of the page go first, then
the earliest time entries, then configurations, and `left_out` says what went and how to page to it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import (
    AuthenticationError,
    ConnectWiseError,
    NotFoundError,
    Page,
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
from mcp_server_connectwise.services.arguments import MAX_ID, TicketId, not_a_yes_no
from mcp_server_connectwise.services.errors import Refused, shown
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.tickets import info_date, ticket_not_found
from mcp_server_connectwise.services.time_entries import ticket_time_entries
from mcp_server_connectwise.untrusted import UntrustedText, clean_untrusted, untrusted_notice

NOTES_PER_PAGE = 20
MAX_NOTES_PER_PAGE = 100
TIME_ENTRIES_PER_TICKET = 100
CONFIGURATIONS_PER_TICKET = 50
# What one answer shows of a text: a note pasted from a log can be megabytes.
MAX_NOTE_CHARS = 2_000
MAX_DESCRIPTION_CHARS = 4_000
# The whole answer, as compact JSON; the tool layer adds its next steps and stays under 32 KB.
MAX_RESULT_BYTES = 30 * 1024
SHOWN_LIMIT = "32 KB of JSON"


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
    section: NoteSection = Field(description="discussion and resolution notes are customer-visible.")
    author: UntrustedText | None = None
    created: datetime | None = None
    text: UntrustedText
    truncated: bool | None = Field(
        None, description=f"Present (true) when text is cut to {MAX_NOTE_CHARS:,} characters."
    )
    length: int | None = None

    @classmethod
    def from_note(cls, note: ServiceNote) -> NoteView:
        author = note.member.identifier or note.member.name if note.member else None
        if author is None and note.contact is not None:
            author = note.contact.name
        text = clean_untrusted(note.text or "", max_chars=len(note.text or ""))
        cut = len(text) > MAX_NOTE_CHARS
        return cls(
            id=note.id,
            section=note_section(note),
            author=author or note.created_by,
            created=note.date_created,
            text=text[:MAX_NOTE_CHARS],
            truncated=True if cut else None,
            length=len(text) if cut else None,
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
            notes=clean_untrusted(entry.notes, MAX_NOTE_CHARS) if entry.notes else None,
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
        None,
        description=f"The first discussion note, cut to {MAX_DESCRIPTION_CHARS:,} characters.",
    )
    description_length: int | None = None
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
    notes: list[NoteView] | None = Field(None, description="Without the description's note.")
    notes_page: int | None = None
    more_notes: bool = False
    next_notes_page: int | None = None
    time_entries: list[TimeEntryView] | None = None
    configurations: list[ConfigurationView] | None = None
    # Sentences: each says what it means.
    configurations_unavailable: str | None = None
    left_out: str | None = None
    notice: str = untrusted_notice(
        "summary, description, company, contact, notes[].text and author, time_entries[].notes, configurations[].name"
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
    notes_limit: Annotated[
        int,
        Field(ge=1, le=MAX_NOTES_PER_PAGE, description="Notes per page."),
        BeforeValidator(not_a_yes_no),
    ] = NOTES_PER_PAGE
    notes_page: Annotated[int, Field(ge=1), BeforeValidator(not_a_yes_no)] = 1
    include_time: bool = True
    include_configurations: Annotated[bool, Field(description="Configurations: the devices attached.")] = True


def _check(request: TicketDetailsRequest) -> None:
    """Refused before any request: a notes page no ticket has, or a page size ConnectWise is not asked for."""
    if not 1 <= request.notes_limit <= MAX_NOTES_PER_PAGE:
        raise Refused(f"notes_limit must be 1 to {MAX_NOTES_PER_PAGE}; got {shown(request.notes_limit)}.")
    if not 1 <= request.notes_page <= MAX_ID:
        raise Refused(f"notes_page {shown(request.notes_page)} is past any ticket's notes; use next_notes_page.")


def _first_discussion_note(session: TenantSession, ticket_id: int) -> Any:
    """One request for the ticket's first discussion note: ConnectWise keeps the initial description so."""
    return session.client.get_page(
        endpoints.ticket_notes(ticket_id),
        conditions=cw.eq("detailDescriptionFlag", True),
        order_by="id asc",
        page_size=1,
    )


def _description_on_page(notes: list[ServiceNote], page: Page, page_number: int) -> tuple[ServiceNote | None, bool]:
    """The description note if this page of notes (newest first) shows which it is, and whether it does: a page
    that holds the oldest notes holds the first discussion note if any page does, unless it is a later page
    without one (an earlier, newer page may have it)."""
    if page.has_next:
        return None, False
    discussion = [note for note in notes if note.detail_description_flag]
    if discussion:
        return min(discussion, key=lambda note: note.id), True
    return None, page_number == 1


async def get_ticket_details(session: TenantSession, request: TicketDetailsRequest) -> TicketDetails:
    """The ticket and what hangs off it, fetched in one round of concurrent requests (and, for a page of notes
    without the oldest, one more for the description)."""
    _check(request)
    ticket_id = request.ticket_id
    include_notes, include_time = request.include_notes, request.include_time
    include_configurations = request.include_configurations
    client = session.client
    requests: dict[str, Any] = {"ticket": client.get(endpoints.ticket(ticket_id))}
    if include_notes:
        requests["notes"] = client.get_page(
            endpoints.ticket_notes(ticket_id),
            order_by="id desc",
            page=request.notes_page,
            page_size=request.notes_limit,
        )
    else:  # the description is a note even when the notes are not wanted
        requests["description"] = _first_discussion_note(session, ticket_id)
    if include_time:
        requests["time"] = client.get_page(
            endpoints.TIME_ENTRIES,
            conditions=ticket_time_entries(ticket_id),
            order_by="timeStart asc",
            page_size=TIME_ENTRIES_PER_TICKET,
        )
    if include_configurations:
        requests["configurations"] = client.get_page(
            endpoints.ticket_configurations(ticket_id), page_size=CONFIGURATIONS_PER_TICKET
        )
    answers: dict[str, Any] = dict(
        zip(requests, await asyncio.gather(*requests.values(), return_exceptions=True), strict=True)
    )
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
    notes: list[ServiceNote] = []
    notes_page = results.get("notes")
    if notes_page is not None:
        notes = [ServiceNote.model_validate(item) for item in notes_page.items]
        description_note, known = _description_on_page(notes, notes_page, request.notes_page)
        if not known and not ticket.initial_description:
            first = await _first_discussion_note(session, ticket_id)
            description_note = ServiceNote.model_validate(first.items[0]) if first.items else None
    else:
        first = results["description"]
        description_note = ServiceNote.model_validate(first.items[0]) if first.items else None
    # ConnectWise keeps the initial description as the first discussion note: shown once, as description.
    if description_note is not None:
        notes = [note for note in notes if note.id != description_note.id]
    description = ticket.initial_description or (description_note.text if description_note else None)
    description = clean_untrusted(description, max_chars=len(description)) if description else None
    details = TicketDetails(
        tenant=session.name,
        id=ticket.id,
        summary=ticket.summary,
        description=description[:MAX_DESCRIPTION_CHARS] if description else None,
        description_length=len(description) if description and len(description) > MAX_DESCRIPTION_CHARS else None,
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
        notes_page=request.notes_page if include_notes else None,
        more_notes=bool(notes_page and notes_page.has_next),
        next_notes_page=request.notes_page + 1 if notes_page and notes_page.has_next else None,
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
    page_ids = [item.get("id") for item in notes_page.items] if notes_page is not None else []
    return within_size(details, request, page_ids)


def _json_bytes(value: BaseModel) -> int:
    """The size of `value` as the tool layer sends it: compact JSON, None left out."""
    payload = value.model_dump(mode="json", exclude_none=True)
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


def within_size(details: TicketDetails, request: TicketDetailsRequest, page_ids: list[Any]) -> TicketDetails:
    """`details` cut to `MAX_RESULT_BYTES`: the oldest notes of the page first, then the earliest time entries,
    then configurations, with `left_out` saying what went and where to find it."""
    if _json_bytes(details) <= MAX_RESULT_BYTES:
        return details
    notes, times = list(details.notes or []), list(details.time_entries or [])
    configurations = list(details.configurations or [])
    dropped_notes: list[NoteView] = []
    dropped_times = dropped_configurations = 0
    # Each item's share of the answer, to cut in one pass; the answer is measured again after.
    excess = _json_bytes(details) - MAX_RESULT_BYTES + 600  # room for left_out
    while excess > 0 and notes:
        dropped_notes.insert(0, notes.pop())
        excess -= _json_bytes(dropped_notes[0]) + 1
    while excess > 0 and times:
        excess -= _json_bytes(times.pop(0)) + 1
        dropped_times += 1
    while excess > 0 and configurations:
        excess -= _json_bytes(configurations.pop()) + 1
        dropped_configurations += 1
    while True:
        cut = details.model_copy(
            update={
                "notes": notes if details.notes is not None else None,
                "time_entries": times if details.time_entries is not None else None,
                "configurations": configurations if details.configurations is not None else None,
                "left_out": _left_out(
                    request, page_ids, len(notes), dropped_notes, dropped_times, dropped_configurations
                ),
            }
        )
        if _json_bytes(cut) <= MAX_RESULT_BYTES or not (notes or times or configurations):
            return cut
        if notes:
            dropped_notes.insert(0, notes.pop())
        elif times:
            times.pop(0)
            dropped_times += 1
        else:
            configurations.pop()
            dropped_configurations += 1


def _left_out(
    request: TicketDetailsRequest,
    page_ids: list[Any],
    kept_notes: int,
    notes: list[NoteView],
    times: int,
    configurations: int,
) -> str | None:
    parts = []
    if notes:
        # Where the first note left out sits among all the ticket's notes, newest first, and the page that
        # holds it when pages are as small as what fitted here.
        index = page_ids.index(notes[0].id) if notes[0].id in page_ids else kept_notes
        position = (request.notes_page - 1) * request.notes_limit + index
        limit = max(1, kept_notes)
        ids = f"id {notes[0].id}" if len(notes) == 1 else f"ids {notes[0].id} to {notes[-1].id}"
        parts.append(
            f"the {len(notes)} oldest note{'s' if len(notes) > 1 else ''} of this page ({ids}) "
            f"{'are' if len(notes) > 1 else 'is'} left out; with notes_limit={limit}, notes_page={position // limit + 1} "
            "holds the newest of them"
        )
    if times:
        parts.append(f"the {times} earliest time entr{'ies are' if times > 1 else 'y is'} left out")
    if configurations:
        parts.append(f"{configurations} configuration{'s are' if configurations > 1 else ' is'} left out")
    if not parts:
        return None
    return f"To keep the answer under {SHOWN_LIMIT}, " + "; ".join(parts) + "."
