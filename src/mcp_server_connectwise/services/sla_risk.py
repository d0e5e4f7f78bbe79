"""SLA risk: the open tickets whose next SLA milestone is past or falls due within a window, by ConnectWise's
own deadlines.

ConnectWise computes a ticket's deadlines (`respondByGoalUTC`, `resplanGoalUTC`, `resolutionGoalUTC`, fields
its 2025.8 OpenAPI export lacks: API.md) with its SLA's business hours and calendars: they are read, never
recomputed. The next milestone is the response
until `dateResponded` is set, then the resolution plan until `dateResplan` is set, then the resolution; a
ticket with `dateResolved` has none left. The conditions select exactly the tickets whose next deadline falls
before the window ends, so every page read is a page of answers, ordered here by deadline (ConnectWise cannot
order by "the next deadline").

[I] A ticket whose board status has `escalationStatus` NoEscalation is waiting (ConnectWise's SLA setup calls
that stage "Do Not Escalate (Waiting)"; the API documents only the value): its clock is stopped, so it is
listed apart, with the deadline ConnectWise holds, and never counted as breached.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.connectwise.client import MAX_PAGE_SIZE
from mcp_server_connectwise.connectwise.models import Ticket, label, read_moment
from mcp_server_connectwise.services import clock, progress
from mcp_server_connectwise.services.arguments import not_a_yes_no
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.ticket_search import BoardNames, CompanyFilter, board_scope
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

# Tickets past or near a deadline are a desk's worst few hundred, not its history: a call reads at most this
# many pages of MAX_PAGE_SIZE and says when more matched.
MAX_PAGES = 3
MAX_TICKETS = MAX_PAGES * MAX_PAGE_SIZE
WAITING = "NoEscalation"  # the escalationStatus of a status that stops the SLA clock
# [I] Our bound: a week ahead is planning, not risk.
MAX_WINDOW_HOURS = 168

Milestone = Literal["respond", "plan", "resolve"]  # the response, the resolution plan, the resolution
# Each milestone's deadline field, in the order they fall due.
DEADLINES: dict[Milestone, str] = {
    "respond": "respondByGoalUTC",
    "plan": "resplanGoalUTC",
    "resolve": "resolutionGoalUTC",
}
FIELDS = (
    "id",
    "summary",
    "board/name",
    "status/id",
    "status/name",
    "priority/name",
    "company/name",
    "owner/identifier",
    "dateResponded",
    "dateResplan",
    *DEADLINES.values(),
)


class SlaRiskRequest(BaseModel):
    board: BoardNames = None
    company: CompanyFilter = None
    within_hours: Annotated[
        float,
        Field(ge=0, le=MAX_WINDOW_HOURS, description="Include deadlines up to this many hours ahead."),
        BeforeValidator(not_a_yes_no),
    ] = 2
    limit: Annotated[
        int, Field(ge=1, le=100, description="Rows per list, soonest first."), BeforeValidator(not_a_yes_no)
    ] = 10


class SlaTicket(BaseModel):
    id: int
    summary: UntrustedText | None = None
    board: str | None = None
    status: str | None = None
    priority: str | None = None
    company: UntrustedText | None = None
    owner: str | None = None
    milestone: Milestone
    deadline: datetime
    minutes_left: int | None = Field(None, description="Negative: breached; absent while paused.")


class SlaRisk(BaseModel):
    tenant: str
    now: datetime
    breached: int = Field(description="Next deadline passed.")
    due_soon: int = Field(description="Next deadline within the window.")
    tickets: list[SlaTicket] = Field(description="Soonest first, at most limit.")
    paused: int = Field(description="In a waiting status: clock stopped.")
    paused_tickets: list[SlaTicket]
    complete: bool = Field(description=f"False: over {MAX_TICKETS:,} matched; these are the first by id.")
    notice: str = untrusted_notice("summary and company")


def next_milestone(ticket: Mapping[str, Any]) -> Milestone | None:
    """The milestone ConnectWise measures a ticket (a row as sent) against next, reading its dates as the
    conditions do (absent is null: not yet met); None once it is resolved."""
    if ticket.get("dateResolved"):
        return None
    if not ticket.get("dateResponded"):
        return "respond"
    return "resolve" if ticket.get("dateResplan") else "plan"


def candidates(cutoff: datetime) -> cw.Expr | None:
    """Open tickets whose next deadline is at or before `cutoff`: the milestones as `next_milestone` reads them."""
    responded, planned = cw.ne("dateResponded", None), cw.ne("dateResplan", None)
    return cw.and_(
        cw.eq("closedFlag", False),
        cw.eq("dateResolved", None),
        cw.or_(
            cw.and_(cw.eq("dateResponded", None), cw.le(DEADLINES["respond"], cutoff)),
            cw.and_(responded, cw.eq("dateResplan", None), cw.le(DEADLINES["plan"], cutoff)),
            cw.and_(responded, planned, cw.le(DEADLINES["resolve"], cutoff)),
        ),
    )


class _Found(NamedTuple):
    """A ticket placed by its next deadline; only the ones shown become rows (a page is up to 1,000)."""

    deadline: datetime
    id: int
    milestone: Milestone
    item: dict[str, Any]


def _placed(item: Any) -> _Found | None:
    """The row's next milestone and its deadline; None for a row the conditions would not select or whose
    deadline cannot be read."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), int):
        return None
    milestone = next_milestone(item)
    deadline = read_moment(item.get(DEADLINES[milestone])) if milestone else None
    return _Found(deadline, item["id"], milestone, item) if milestone and deadline else None


def _row(found: _Found, now: datetime, *, waiting: bool) -> SlaTicket:
    ticket = Ticket.model_validate(found.item)
    return SlaTicket(
        id=ticket.id,
        summary=ticket.summary,
        board=label(ticket.board),
        status=label(ticket.status),
        priority=label(ticket.priority),
        company=label(ticket.company),
        owner=ticket.owner.identifier if ticket.owner else None,
        milestone=found.milestone,
        deadline=found.deadline,
        minutes_left=None if waiting else math.floor((found.deadline - now).total_seconds() / 60),
    )


async def find_sla_risk(session: TenantSession, request: SlaRiskRequest, *, now: datetime | None = None) -> SlaRisk:
    """One request per page of candidates (at most MAX_PAGES), plus the board lists not yet cached."""
    now = (now or clock.now()).astimezone(timezone.utc).replace(microsecond=0)
    scope = await board_scope(session, request.board, request.company)
    waiting_statuses = {status.id for status in scope.statuses().values() if status.escalation_status == WAITING}
    conditions = cw.and_(scope.conditions, candidates(now + timedelta(hours=request.within_hours)))
    running: list[_Found] = []
    paused: list[_Found] = []
    page, complete = 1, False
    while page <= MAX_PAGES:
        found = await session.client.get_page(
            endpoints.TICKETS,
            conditions=conditions,
            order_by="id asc",
            fields=FIELDS,
            page=page,
            page_size=MAX_PAGE_SIZE,
        )
        for item in found.items:
            if (placed := _placed(item)) is not None:
                status = item.get("status")
                status_id = status.get("id") if isinstance(status, dict) else None
                waits = isinstance(status_id, int) and status_id in waiting_statuses
                (paused if waits else running).append(placed)
        await progress.advance(len(found.items), what="tickets read")
        if not found.has_next or not found.items:
            complete = True
            break
        page += 1
    running.sort(key=lambda found: (found.deadline, found.id))
    paused.sort(key=lambda found: (found.deadline, found.id))
    breached = sum(1 for found in running if found.deadline < now)
    return SlaRisk(
        tenant=session.name,
        now=now,
        breached=breached,
        due_soon=len(running) - breached,
        tickets=[_row(found, now, waiting=False) for found in running[: request.limit]],
        paused=len(paused),
        paused_tickets=[_row(found, now, waiting=True) for found in paused[: request.limit]],
        complete=complete,
    )
