"""A service desk's figures for a period: tickets opened and closed, open now by status and by priority, and
how long first responses and resolutions took.

Every count is one `/count` request with its own conditions, all sent at once; "open now by status" counts
each open status of the boards in scope (from the cached board lists), "by priority" each priority. The times
come from the tickets closed in the period, read a page of MAX_PAGE_SIZE at a time with only the dates needed,
at most MAX_PAGES pages: the answer says when that cap cut them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.connectwise.client import MAX_PAGE_SIZE
from mcp_server_connectwise.connectwise.models import read_moment
from mcp_server_connectwise.services import catalog, clock, progress, resolve
from mcp_server_connectwise.services.arguments import When, iso_text
from mcp_server_connectwise.services.concurrency import all_or_none
from mcp_server_connectwise.services.errors import Refused
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.ticket_search import BoardNames, CompanyFilter, board_scope

MAX_PAGES = 5
MAX_TIMED = MAX_PAGES * MAX_PAGE_SIZE
TIME_FIELDS = ("id", "_info/dateEntered", "dateResponded", "closedDate")


class DeskSummaryRequest(BaseModel):
    board: BoardNames = None
    company: CompanyFilter = None
    since: Annotated[
        datetime,
        Field(description="Start of the period, with a time zone, e.g. 2026-10-01T00:00:00Z."),
        BeforeValidator(iso_text),
    ]
    until: Annotated[When, Field(description="End of the period (default: now).")] = None


class StatusCount(BaseModel):
    board: str
    status: str
    open: int


class PriorityCount(BaseModel):
    priority: str
    open: int


class Durations(BaseModel):
    tickets: int
    median_minutes: float | None = None
    p90_minutes: float | None = None


class DeskSummary(BaseModel):
    tenant: str
    since: datetime
    until: datetime
    opened: int = Field(description="Entered in the period.")
    closed: int = Field(description="Closed in the period.")
    open_now: int
    open_by_status: list[StatusCount] = Field(description="Non-zero, in board order.")
    open_by_priority: list[PriorityCount] = Field(description="Non-zero.")
    first_response: Durations = Field(description="Entered to first response, tickets closed in the period.")
    resolution: Durations = Field(description="Entered to closed, the same tickets.")
    times_complete: bool = Field(description=f"False: over {MAX_TIMED:,} closed; times of the first by id.")


def nearest_rank(ordered: list[float], percent: int) -> float:
    """The `percent`-th percentile of `ordered` (ascending, not empty) by the nearest-rank method: the value
    at 1-based rank ceil(percent/100 * n), an actual observation, never an interpolation. The median is the
    50th: for an even count, the lower of the two middle values."""
    rank = -(-percent * len(ordered) // 100)  # ceil, in integers
    return ordered[max(rank, 1) - 1]


def durations(seconds: list[float]) -> Durations:
    if not seconds:
        return Durations(tickets=0)
    ordered = sorted(seconds)
    return Durations(
        tickets=len(ordered),
        median_minutes=round(nearest_rank(ordered, 50) / 60, 1),
        p90_minutes=round(nearest_rank(ordered, 90) / 60, 1),
    )


async def _closed_times(session: TenantSession, conditions: cw.Expr | None) -> tuple[list[float], list[float], bool]:
    """Seconds from entry to first response and to close of the tickets `conditions` select, and whether all
    of them were read."""
    responses: list[float] = []
    resolutions: list[float] = []
    for page in range(1, MAX_PAGES + 1):
        found = await session.client.get_page(
            endpoints.TICKETS,
            conditions=conditions,
            order_by="id asc",
            fields=TIME_FIELDS,
            page=page,
            page_size=MAX_PAGE_SIZE,
        )
        for item in found.items:  # read as sent: a model per row would cost more than the rest of the call
            info = item.get("_info") if isinstance(item, dict) else None
            entered = read_moment(info.get("dateEntered")) if isinstance(info, dict) else None
            if entered is None:
                continue
            if (responded := read_moment(item.get("dateResponded"))) is not None:
                responses.append((responded - entered).total_seconds())
            if (closed := read_moment(item.get("closedDate"))) is not None:
                resolutions.append((closed - entered).total_seconds())
        await progress.advance(len(found.items), what="closed tickets read")
        if not found.has_next or not found.items:
            return responses, resolutions, True
    return responses, resolutions, False


async def service_desk_summary(session: TenantSession, request: DeskSummaryRequest) -> DeskSummary:
    since = resolve.moment("since", request.since).astimezone(timezone.utc)
    until = (resolve.moment("until", request.until) if request.until else clock.now()).astimezone(timezone.utc)
    if since >= until:
        raise Refused(
            f"since ({since.isoformat()}) is not before until ({until.isoformat()}); give a period that ends after "
            "it starts."
        )
    scope = await board_scope(session, request.board, request.company)
    priorities, _ = await session.catalog.load(catalog.PRIORITIES)
    # One count per open status: of the boards named, else of every active board (statuses no longer in use
    # hold no tickets worth a request each).
    open_statuses = [
        (board, status)
        for board, statuses in scope.boards
        if request.board is not None or not board.inactive_flag
        for status in statuses
        if not status.closed_status and not status.inactive
    ]
    is_open = cw.and_(scope.conditions, cw.eq("closedFlag", False))
    closed = cw.and_(
        scope.conditions, cw.eq("closedFlag", True), cw.ge("closedDate", since), cw.lt("closedDate", until)
    )
    counted = [
        cw.and_(scope.conditions, cw.ge("dateEntered", since), cw.lt("dateEntered", until)),
        closed,
        is_open,
        *(cw.and_(is_open, cw.eq("status/id", status.id)) for _, status in open_statuses),
        *(cw.and_(is_open, cw.eq("priority/id", priority.id)) for priority in priorities),
    ]
    counts, (responses, resolutions, complete) = await all_or_none(
        all_or_none(*(session.client.count(endpoints.TICKETS, conditions=conditions) for conditions in counted)),
        _closed_times(session, closed),
    )
    opened, closed_count, open_now, *rest = counts
    by_status, by_priority = rest[: len(open_statuses)], rest[len(open_statuses) :]
    return DeskSummary(
        tenant=session.name,
        since=since,
        until=until,
        opened=opened,
        closed=closed_count,
        open_now=open_now,
        open_by_status=[
            StatusCount(board=board.name or str(board.id), status=status.name or str(status.id), open=count)
            for (board, status), count in zip(open_statuses, by_status, strict=True)
            if count
        ],
        open_by_priority=[
            PriorityCount(priority=priority.name or str(priority.id), open=count)
            for priority, count in zip(priorities, by_priority, strict=True)
            if count
        ],
        first_response=durations(responses),
        resolution=durations(resolutions),
        times_complete=complete,
    )
