"""Searching tickets: names and text as conditions ConnectWise can take, one request per call."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.connectwise.models import (
    Ticket,
    label,
)
from mcp_server_connectwise.services import resolve
from mcp_server_connectwise.services.arguments import MAX_ID, NameOrNames, When, not_a_yes_no
from mcp_server_connectwise.services.errors import Refused, shown
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.tickets import info_date
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
    "id",
    "summary",
    "board/name",
    "status/name",
    "priority/name",
    "company/name",
    "contact/name",
    "owner/identifier",
    "requiredDate",
    "closedFlag",
    "_info/lastUpdated",
)
# Search text longer than this matches nothing: a ticket summary has at most 100 characters, a name at most 50.
MAX_SEARCH_TEXT = 100
# ConnectWise asks for URLs under ~2000 characters (API.md); host, path, fields, order and paging take ~400.
MAX_CONDITIONS_IN_URL = 1500


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
            updated=info_date(ticket, "lastUpdated"),
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

    board: Annotated[NameOrNames, Field(description='Board name or list of names, e.g. "Service Desk" (any case).')] = (
        None
    )
    status: Annotated[
        NameOrNames, Field(description='Status name or list, e.g. ["New", "In Progress"] (any case).')
    ] = None
    company: Annotated[str | None, Field(description="Company name (or part of it) or company identifier.")] = None
    contact: Annotated[str | None, Field(description="Contact name or part of it.")] = None
    owner: Annotated[str | None, Field(description='Owner: member identifier, e.g. "jsmith", or part of a name.')] = (
        None
    )
    priority: Annotated[NameOrNames, Field(description='Priority name or list, e.g. "Priority 1 - Critical".')] = None
    summary_contains: Annotated[str | None, Field(description="Text the summary contains.")] = None
    entered_after: When = None
    entered_before: When = None
    updated_after: When = None
    open_only: Annotated[bool, Field(description="Only tickets that are not closed.")] = True
    order_by: OrderBy = "newest"
    limit: Annotated[int, Field(ge=1, le=100, description="Rows per page."), BeforeValidator(not_a_yes_no)] = 25
    page: Annotated[
        int, Field(ge=1, description="Page number, from next_page of an earlier call."), BeforeValidator(not_a_yes_no)
    ] = 1

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
