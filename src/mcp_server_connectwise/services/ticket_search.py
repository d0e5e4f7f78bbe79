"""Searching tickets: names and text as conditions ConnectWise can take, one request per call.

A board, status, priority or owner that exists nowhere in the tenant would make ConnectWise answer "no ticket",
which reads as an empty queue: such a search is refused with the names there are. Names are checked against the
tenant's cached reference lists (`catalog`) before the search when those are cached (no request), else after
it, and then only the names the rows found do not show (on a cold cache a search that finds tickets costs no
more than itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.connectwise.models import (
    Board,
    BoardStatus,
    Member,
    Priority,
    Ticket,
    label,
)
from mcp_server_connectwise.services import catalog, resolve
from mcp_server_connectwise.services.arguments import NameOrNames, When, any_case, not_a_yes_no
from mcp_server_connectwise.services.concurrency import all_or_none
from mcp_server_connectwise.services.errors import Refused, shown
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.tickets import info_date
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

_OrderBy = Literal["newest", "oldest", "recently_updated", "least_recently_updated"]
OrderBy = Annotated[_OrderBy, BeforeValidator(any_case(_OrderBy))]
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
    owner: str | None = None
    updated: datetime | None = None
    due: datetime | None = None
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
    has_more: bool
    next_page: int | None = None
    notice: str = untrusted_notice("summary, company and contact")


BoardNames = NameOrNames
# A filter: part of a name matches, unlike arguments.CompanyName (one company).
CompanyFilter = Annotated[str | None, Field(description="Name, part of one, or identifier.")]


class TicketQuery(BaseModel):
    """A ticket search: names, not ids, combined with AND."""

    board: BoardNames = None
    status: NameOrNames = None
    company: CompanyFilter = None
    contact: Annotated[str | None, Field(description="Name or part of one.")] = None
    owner: Annotated[str | None, Field(description='Member identifier, e.g. "jsmith", or part of a name.')] = None
    priority: Annotated[NameOrNames, Field(description='e.g. "Priority 1 - Critical".')] = None
    summary_contains: str | None = None
    entered_after: When = None
    entered_before: When = None
    updated_after: When = None
    updated_before: Annotated[When, Field(description="e.g. now minus 48 hours.")] = None
    due_before: Annotated[When, Field(description="Required date (due date) before this.")] = None
    open_only: bool = True
    order_by: OrderBy = "newest"
    limit: Annotated[int, Field(ge=1, le=100, description="Rows per page."), BeforeValidator(not_a_yes_no)] = 25
    page: Annotated[int, Field(ge=1), BeforeValidator(not_a_yes_no)] = 1

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
        cw.lt("lastUpdated", query.updated_before) if query.updated_before else None,
        cw.lt("requiredDate", query.due_before) if query.due_before else None,
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
        resolve.search_text(argument, getattr(query, argument), MAX_SEARCH_TEXT)
    for argument in ("entered_after", "entered_before", "updated_after", "updated_before", "due_before"):
        if getattr(query, argument) is not None:
            resolve.moment(argument, getattr(query, argument))
    for after, before in (("entered_after", "entered_before"), ("updated_after", "updated_before")):
        starts, ends = getattr(query, after), getattr(query, before)
        if starts is not None and ends is not None and starts >= ends:
            raise Refused(
                f"{after} ({starts.isoformat()}) is not before {before} ({ends.isoformat()}), so no ticket can "
                "match; swap them or widen the range."
            )
    resolve.check_page(query.page)
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


# --- names that exist nowhere in the tenant ------------------------------------------------------------

NameArgument = Literal["board", "status", "priority", "owner"]


def _named(query: TicketQuery) -> list[tuple[NameArgument, str]]:
    """Each name the search filters on, as sent (whitespace collapsed); blank names are no filter."""
    named: list[tuple[NameArgument, str]] = []
    for argument in ("board", "status", "priority"):
        named += [(argument, resolve.collapse(name)) for name in query.names(argument) if name.strip()]
    if owner := _text(query.owner):
        named.append(("owner", owner))
    return named


def _cached(session: TenantSession, argument: NameArgument) -> bool:
    """Whether the lists `argument` is checked against are all cached: checking it costs no request."""
    if argument != "status":
        return session.catalog.cached(_LISTS[argument]) is not None
    boards = session.catalog.cached(catalog.BOARDS)
    return boards is not None and all(
        session.catalog.cached(catalog.board_statuses(board.id)) is not None for board in boards
    )


_LISTS: dict[str, catalog.ReferenceList[Any]] = {
    "board": catalog.BOARDS,
    "priority": catalog.PRIORITIES,
    "owner": catalog.MEMBERS,
}


def in_board_order(statuses: list[BoardStatus]) -> list[BoardStatus]:
    return sorted(statuses, key=lambda s: (s.sort_order is None, s.sort_order or 0, s.id))


async def _statuses(session: TenantSession, *, refresh: bool) -> tuple[list[BoardStatus], bool]:
    """The statuses of every board (inactive ones too), board by board in board order; whether all of them
    were fetched just now."""
    boards, fresh = await session.catalog.load(catalog.BOARDS, refresh=refresh)
    loaded = await all_or_none(
        *(session.catalog.load(catalog.board_statuses(board.id), refresh=refresh) for board in boards)
    )
    statuses = [status for items, _ in loaded for status in in_board_order(items)]
    return statuses, fresh and all(fetched for _, fetched in loaded)


def _member_names(member: Member) -> tuple[str, ...]:
    full = " ".join(part for part in (member.first_name, member.last_name) if part)
    return tuple(resolve.normalise(name) for name in (member.identifier, full) if name)


def _matches(argument: NameArgument, name: str, items: list) -> bool:
    """Whether `name` can match one of `items` as the search compares it: names equal in any case, an owner
    as (part of) a member's identifier or name."""
    wanted = resolve.normalise(name)
    if argument == "owner":
        return any(wanted in known for member in items for known in _member_names(member))
    return any(item.name is not None and resolve.normalise(item.name) == wanted for item in items)


async def _known_items(session: TenantSession, argument: NameArgument, *, refresh: bool = False) -> tuple[list, bool]:
    if argument == "status":
        return await _statuses(session, refresh=refresh)
    return await session.catalog.load(_LISTS[argument], refresh=refresh)


def _distinct(names: Sequence[str | None]) -> list[str]:
    seen: dict[str, str] = {}
    for name in names:
        if name:
            seen.setdefault(resolve.normalise(name), name)
    return list(seen.values())


def _unknown(session: TenantSession, argument: NameArgument, name: str, items: list) -> Refused:
    tenant = session.name
    if argument == "owner":
        identifiers = [m.identifier for m in items if isinstance(m, Member) and not m.inactive_flag]
        return Refused(
            f"No member of tenant {tenant} has {shown(name)} in their identifier or name, so no ticket can match; "
            f"members: {resolve.name_list(identifiers)}."
        )
    if argument == "status":
        names = _distinct([s.name for s in items if isinstance(s, BoardStatus) and not s.inactive])
        return Refused(
            f"No board in tenant {tenant} has a status {shown(name)}, so no ticket can match; statuses: "
            f"{resolve.name_list(names)}."
        )
    if argument == "board":
        names = _distinct([b.name for b in items if isinstance(b, Board) and not b.inactive_flag])
        return Refused(
            f"There is no board {shown(name)} in tenant {tenant}, so no ticket can match; boards: "
            f"{resolve.name_list(names)}."
        )
    names = _distinct([p.name for p in items if isinstance(p, Priority)])
    return Refused(
        f"There is no priority {shown(name)} in tenant {tenant}, so no ticket can match; priorities: "
        f"{resolve.name_list(names)}."
    )


async def _check_known(session: TenantSession, argument: NameArgument, name: str) -> None:
    """Refused if `name` exists nowhere in the tenant; a list served from the cache is fetched again once first
    (it may predate the name)."""
    items, fresh = await _known_items(session, argument)
    if not _matches(argument, name, items) and not fresh:
        items, _ = await _known_items(session, argument, refresh=True)
    if not _matches(argument, name, items):
        raise _unknown(session, argument, name, items)


def _shown(rows: list[TicketRow], argument: NameArgument, name: str) -> bool:
    """Whether the rows found show that `name` exists: a row has it (every row matched the one owner filter)."""
    if argument == "owner":
        return bool(rows)
    wanted = resolve.normalise(name)
    return any((value := getattr(row, argument)) is not None and resolve.normalise(value) == wanted for row in rows)


async def search_tickets(session: TenantSession, query: TicketQuery) -> TicketSearchResult:
    conditions = _checked_conditions(query)
    after_search = []
    for argument, name in _named(query):
        if _cached(session, argument):
            await _check_known(session, argument, name)
        else:
            after_search.append((argument, name))
    page = await session.client.get_page(
        endpoints.TICKETS,
        conditions=conditions,
        order_by=ORDER_BY[query.order_by],
        fields=SEARCH_FIELDS,
        page=query.page,
        page_size=query.limit,
    )
    rows = [TicketRow.from_ticket(Ticket.model_validate(item)) for item in page.items]
    for argument, name in after_search:
        if not _shown(rows, argument, name):
            await _check_known(session, argument, name)
    return TicketSearchResult(
        tenant=session.name,
        tickets=rows,
        page=page.page,
        has_more=page.has_next,
        next_page=page.page + 1 if page.has_next else None,
    )


# --- the board and company part of a search, for the services that count and walk tickets ---------------


@dataclass(frozen=True)
class BoardScope:
    """The tickets a board and company filter select, as conditions, and the boards they can be on, each with
    its statuses (inactive ones too) in board order."""

    conditions: cw.Expr | None
    boards: list[tuple[Board, list[BoardStatus]]]

    def statuses(self) -> dict[int, BoardStatus]:
        return {status.id: status for _, statuses in self.boards for status in statuses}


async def board_scope(session: TenantSession, board: NameOrNames, company: str | None) -> BoardScope:
    """The scope of `board` (names; None: every board, inactive ones too) and `company`, checked as a search
    checks them: text that conditions cannot carry is refused before any request, a board the tenant has
    nowhere with the boards there are. The board lists come from the tenant's cached catalog."""
    query = TicketQuery(board=board, company=company, open_only=False)
    conditions = _checked_conditions(query)
    named = [name for argument, name in _named(query) if argument == "board"]
    for name in named:
        await _check_known(session, "board", name)
    boards, _ = await session.catalog.load(catalog.BOARDS)
    wanted = {resolve.normalise(name) for name in named}
    in_scope = [b for b in boards if not wanted or (b.name is not None and resolve.normalise(b.name) in wanted)]
    loaded = await all_or_none(*(session.catalog.load(catalog.board_statuses(b.id)) for b in in_scope))
    return BoardScope(
        conditions, [(b, in_board_order(statuses)) for b, (statuses, _) in zip(in_scope, loaded, strict=True)]
    )
