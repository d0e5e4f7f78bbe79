"""Creating a ticket: every name resolved first, a duplicate check, one POST made exactly once, then devices.

Order, so that a refusal sends nothing: the company (identifier or name), then the board (the call's, else
the tenant's `default_board`) and everything that belongs to it (status, else the board's default; type,
subtype, item), priority and owner, the contact within the company, the agreement (the call's, which must be
the company's and active today; else the company's only active agreement of the tenant's
`default_agreement_type`, if it has exactly one), and the configurations within the company. Only then is
anything written.

Duplicates: before creating, one request lists the company's open tickets (of the contact, when one is
given) entered in the last `DUPLICATE_WINDOW`; those whose summary is similar (`similarity`) stop the create
and are returned, unless `allow_duplicate`. A repeat of a call whose outcome was unknown first looks for
the ticket that call may have created (write recovery), so a lost answer never leads to a second ticket.

Notifications are off unless asked for (`notify`): a ticket made by an assistant must not email a customer
by surprise. `description` is the customer-visible first note, `internal_note` a staff-only one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, Field

from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.connectwise.models import Company, Configuration, Ticket, label
from mcp_server_connectwise.connectwise.times import utc_text
from mcp_server_connectwise.services import catalog, clock, resolve, write_recovery
from mcp_server_connectwise.services.agreements import company_agreements, of_type, today, usable_agreement
from mcp_server_connectwise.services.arguments import NameOrId, RecordName, When, written_text
from mcp_server_connectwise.services.companies import company as resolve_company
from mcp_server_connectwise.services.companies import described
from mcp_server_connectwise.services.contacts import contact as resolve_contact
from mcp_server_connectwise.services.errors import Look, Refused
from mcp_server_connectwise.services.notes import MAX_NOTE_CHARS
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.ticket_devices import attach_to_new_ticket, find_configuration
from mcp_server_connectwise.services.tickets import info_date
from mcp_server_connectwise.services.updates import MAX_SUMMARY_CHARS, Level, summary_text
from mcp_server_connectwise.services.write_recovery import PlannedWrite, entered_since, same_text
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

# Open tickets entered this recently are compared with a new one.
DUPLICATE_WINDOW = timedelta(days=14)
# Summaries at least this similar (see `similarity`) are possible duplicates.
SIMILAR = 0.5
# The duplicate check reads one page of the company's recent open tickets, newest first.
_DUPLICATE_CANDIDATES = 100
# Devices one call attaches; more is a sync, not a ticket.
MAX_CONFIGURATIONS = 10
# Tickets read while looking for one whose POST lost its answer; a company gets far fewer in minutes.
_MAX_RECENT_TICKETS = 50

# Words that say nothing about what a ticket is about.
_STOPWORDS = frozenset(
    "a an and are at be but by can for from has have i in is it its my no not of on or our please the to "
    "with we was were will".split()
)
_WORD = re.compile(r"[^\W_]+")


def _words(summary: str) -> frozenset[str]:
    """The content words of a summary: case-folded runs of letters and digits, without stopwords and one-letter
    words, a plural `s` dropped from words over three letters ("printers" -> "printer")."""
    words = set()
    for word in _WORD.findall(summary.casefold()):
        if len(word) < 2 or word in _STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.add(word)
    return frozenset(words)


def similarity(one: str, other: str) -> float:
    """How alike two summaries are, 0 to 1: the Jaccard index of their content words (shared words over all
    words). Deterministic, order-free: "Printer jammed at front desk" and "front-desk printer is jammed" are 1."""
    a, b = _words(one), _words(other)
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


class NewTicket(BaseModel):
    """A ticket to create; names, not ids."""

    summary: Annotated[str, Field(min_length=1, max_length=MAX_SUMMARY_CHARS)]
    company: Annotated[RecordName, Field(description="Identifier or name.")]
    board: Annotated[NameOrId, Field(description="Default: the tenant's default_board.")] = None
    contact: Annotated[NameOrId, Field(description="Name, email or id.")] = None
    description: Annotated[str | None, Field(max_length=MAX_NOTE_CHARS, description="Customer-visible first note.")] = (
        None
    )
    internal_note: Annotated[str | None, Field(max_length=MAX_NOTE_CHARS, description="Staff-only first note.")] = None
    status: Annotated[NameOrId, Field(description="Default: the board's.")] = None
    priority: NameOrId = None
    type: NameOrId = None
    subtype: NameOrId = None
    item: NameOrId = None
    severity: Level | None = None
    impact: Level | None = None
    owner: Annotated[NameOrId, Field(description='Member identifier, e.g. "jsmith".')] = None
    agreement: Annotated[NameOrId, Field(description="Of the company, active today: name or id.")] = None
    required_date: Annotated[When, Field(description="Due date.")] = None
    configurations: Annotated[
        list[RecordName] | None,
        Field(max_length=MAX_CONFIGURATIONS, description="Devices to attach: ids, names or serial numbers."),
    ] = None
    notify: Annotated[bool, Field(description="Email the contact and resources.")] = False
    allow_duplicate: Annotated[bool, Field(description="Create despite similar open tickets.")] = False


class PossibleDuplicate(BaseModel):
    id: int
    summary: UntrustedText | None = None
    status: str | None = None
    age_hours: float | None = None


class TicketCreated(BaseModel):
    tenant: str
    created: bool
    ticket_id: int | None = None
    summary: UntrustedText | None = None
    board: str | None = None
    status: str | None = None
    priority: str | None = None
    company: UntrustedText | None = None
    company_identifier: str | None = None
    contact: UntrustedText | None = None
    owner: str | None = None
    agreement: str | None = None
    defaulted: list[str] = Field(default_factory=list)  # "status (the board's default)"
    notified: bool = False
    configurations: list[int] = Field(default_factory=list)  # ids of the devices attached
    configurations_not_attached: list[str] = Field(default_factory=list, description="Why; the ticket exists.")
    possible_duplicates: list[PossibleDuplicate] | None = None
    notice: str = untrusted_notice("summary, company, contact and possible_duplicates")


@dataclass
class _Resolved:
    """What the names of a NewTicket stand for (as the POST body), and which fields were left to a default."""

    company: Company
    body: dict
    board_name: str | None
    defaulted: list[str]
    contact_id: int | None = None
    agreement_name: str | None = None
    configurations: list[Configuration] = dataclass_field(default_factory=list)


def _text(argument: str, text: str | None) -> str | None:
    if text is None:
        return None
    cleaned = written_text(argument, text).strip()
    return cleaned or None


async def _board(session: TenantSession, request: NewTicket, defaulted: list[str]) -> tuple[int, str | None]:
    if request.board is not None:
        board = await resolve.board(session, resolve.name_or_id("board", request.board))
        return board.id, board.name
    default = session.config.default_board
    if default is None:
        boards, _ = await session.catalog.load(catalog.BOARDS)
        raise Refused(
            f"Give board: tenant {session.name} has no default_board in its config; boards: "
            f"{resolve.name_list([b.name for b in boards if not b.inactive_flag])}."
        )
    try:
        board = await resolve.board(session, default)
    except Refused as refused:
        raise Refused(f"The tenant's default_board is wrong, so give board (or fix the config): {refused}") from None
    defaulted.append("board (the tenant's default_board)")
    return board.id, board.name


async def _resolve(session: TenantSession, request: NewTicket) -> _Resolved:
    """Every name of `request` as the id ConnectWise wants, or a refusal before anything is written."""
    summary = summary_text(request.summary)
    description = _text("description", request.description)
    internal_note = _text("internal_note", request.internal_note)
    for argument in ("status", "priority", "type", "subtype", "item", "owner", "contact", "agreement"):
        if (value := getattr(request, argument)) is not None:
            resolve.name_or_id(argument, value)
    due = resolve.moment("required_date", request.required_date) if request.required_date else None
    company = await resolve_company(session, request.company)
    defaulted: list[str] = []
    board_id, board_name = await _board(session, request, defaulted)
    body: dict = {"summary": summary, "company": {"id": company.id}, "board": {"id": board_id}}
    if request.status is not None:
        status = await resolve.status_on_board(session, board_id, board_name, request.status)
    else:
        status = await resolve.default_status(session, board_id, board_name)
        defaulted.append("status (the board's default)")
    body["status"] = {"id": status.id}
    if request.priority is not None:
        body["priority"] = {"id": (await resolve.priority(session, request.priority)).id}
    else:
        defaulted.append("priority (ConnectWise's default)")
    if request.owner is not None:
        body["owner"] = {"id": (await resolve.member(session, request.owner)).id}
    for argument, path, kind in (
        ("type", "type", catalog.board_types),
        ("subtype", "subType", catalog.board_subtypes),
        ("item", "item", catalog.board_items),
    ):
        if (value := getattr(request, argument)) is not None:
            found = await resolve.board_named(session, kind(board_id), argument, board_name, value)
            body[path] = {"id": found.id}
    for argument, path in (("severity", "severity"), ("impact", "impact")):
        if (value := getattr(request, argument)) is not None:
            body[path] = value
    if due is not None:
        body["requiredDate"] = utc_text(due)
    if description:
        body["initialDescription"] = description
    if internal_note:
        body["initialInternalAnalysis"] = internal_note
    body["processNotifications"] = request.notify
    resolved = _Resolved(company=company, body=body, defaulted=defaulted, board_name=board_name)
    if request.contact is not None:
        contact = await resolve_contact(session, company, request.contact)
        body["contact"] = {"id": contact.id}
        resolved.contact_id = contact.id
    if request.agreement is not None:
        agreement = await usable_agreement(session, company, request.agreement)
        body["agreement"] = {"id": agreement.id}
        resolved.agreement_name = agreement.name
    elif session.config.default_agreement_type is not None:
        await _default_agreement(session, resolved, session.config.default_agreement_type)
    for value in request.configurations or ():
        configuration = await find_configuration(session, company, value)
        if all(c.id != configuration.id for c in resolved.configurations):
            resolved.configurations.append(configuration)
    return resolved


async def _default_agreement(session: TenantSession, resolved: _Resolved, agreement_type: str) -> None:
    """Put the ticket under the company's agreement of `agreement_type` if it has exactly one active today;
    with several, say so in `defaulted` and leave it to the caller."""
    fitting = of_type(await company_agreements(session, resolved.company), agreement_type, today())
    if not fitting:
        return
    kind = label(fitting[0].type)  # as ConnectWise spells it
    if len(fitting) == 1:
        resolved.body["agreement"] = {"id": fitting[0].id}
        resolved.agreement_name = fitting[0].name
        resolved.defaulted.append(
            f"agreement (the company's only active {kind} agreement: the tenant's default_agreement_type)"
        )
    else:
        names = ", ".join(f"{a.name} (id {a.id})" for a in fitting)
        resolved.defaulted.append(
            f"agreement left out: the company has {len(fitting)} active {kind} agreements ({names}); "
            "give agreement to choose one"
        )


async def _possible_duplicates(session: TenantSession, resolved: _Resolved) -> list[PossibleDuplicate]:
    """The company's (and contact's) open tickets entered within DUPLICATE_WINDOW whose summary is similar to
    the new one's, most similar first: one request."""
    now = clock.now()
    conditions = cw.and_(
        cw.eq("company/id", resolved.company.id),
        cw.eq("contact/id", resolved.contact_id) if resolved.contact_id is not None else None,
        cw.eq("closedFlag", False),
        cw.ge("dateEntered", now - DUPLICATE_WINDOW),
    )
    page = await session.client.get_page(
        endpoints.TICKETS,
        conditions=conditions,
        fields=("id", "summary", "status", "_info/dateEntered"),
        order_by="id desc",
        page_size=_DUPLICATE_CANDIDATES,
    )
    summary = resolved.body["summary"]
    scored = []
    for item in page.items:
        ticket = Ticket.model_validate(item)
        score = similarity(summary, ticket.summary or "")
        if score >= SIMILAR:
            entered = info_date(ticket, "dateEntered")
            age = round((now - entered).total_seconds() / 3600, 1) if entered else None
            scored.append(
                (
                    -score,
                    -ticket.id,
                    PossibleDuplicate(id=ticket.id, summary=ticket.summary, status=label(ticket.status), age_hours=age),
                )
            )
    return [duplicate for *_, duplicate in sorted(scored, key=lambda s: (s[0], s[1]))]


def _planned(session: TenantSession, resolved: _Resolved) -> PlannedWrite:
    body = resolved.body

    async def find(since: datetime) -> list[dict]:
        """The company's tickets on the board with this summary entered since `since`, newest first."""
        found = []
        async for item in session.client.iterate(
            endpoints.TICKETS,
            conditions=cw.and_(
                cw.eq("company/id", body["company"]["id"]),
                cw.eq("board/id", body["board"]["id"]),
                cw.ge("dateEntered", since),
            ),
            order_by="id desc",
            fields=("id", "summary", "board", "status", "priority", "company", "contact", "owner", "_info/dateEntered"),
            page_size=_MAX_RECENT_TICKETS,
            limit=_MAX_RECENT_TICKETS,
        ):
            if same_text(item.get("summary"), body["summary"]) and entered_since(
                item.get("_info") or {}, "dateEntered", since
            ):
                found.append(item)
        return found

    return PlannedWrite(
        "ticket",
        endpoints.TICKETS,
        body,
        f"for company {described(resolved.company)} on board {resolved.board_name}",
        check="the company's tickets on that board",
        find=find,
        look=Look.FIND_TICKET,
    )


async def create_ticket(session: TenantSession, request: NewTicket) -> TicketCreated:
    resolved = await _resolve(session, request)
    write = _planned(session, resolved)
    created = await write_recovery.recover_earlier(session, write)
    if created is None:
        if not request.allow_duplicate:
            duplicates = await _possible_duplicates(session, resolved)
            if duplicates:
                return TicketCreated(tenant=session.name, created=False, possible_duplicates=duplicates)
        created = await write_recovery.send_once(session, write)
    ticket = Ticket.model_validate(created)
    attached, not_attached = [], []
    for configuration in resolved.configurations:
        failure = await attach_to_new_ticket(session, ticket.id, configuration)
        if failure is None:
            attached.append(configuration.id)
        else:
            not_attached.append(failure)
    return TicketCreated(
        tenant=session.name,
        created=True,
        ticket_id=ticket.id,
        summary=ticket.summary or resolved.body["summary"],
        board=label(ticket.board) or resolved.board_name,
        status=label(ticket.status),
        priority=label(ticket.priority),
        company=label(ticket.company) or resolved.company.name,
        company_identifier=(ticket.company.identifier if ticket.company else None) or resolved.company.identifier,
        contact=label(ticket.contact) or ticket.contact_name,
        owner=ticket.owner.identifier if ticket.owner else None,
        agreement=label(ticket.agreement) or resolved.agreement_name,
        defaulted=resolved.defaulted,
        notified=request.notify,
        configurations=attached,
        configurations_not_attached=not_attached,
    )
