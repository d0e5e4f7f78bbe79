"""SLA risk: the open tickets whose next SLA milestone is past or falls due within a window, by ConnectWise's
own deadlines.

ConnectWise computes a ticket's deadlines (`respondByGoalUTC`, `resplanGoalUTC`, `resolutionGoalUTC`) with
its SLA's business hours and calendars: they are read, never recomputed. The next milestone is the response
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
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.connectwise.client import MAX_PAGE_SIZE
from mcp_server_connectwise.connectwise.models import Ticket, label
from mcp_server_connectwise.services.arguments import not_a_yes_no
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.ticket_search import BoardNames, CompanyName, board_scope
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
    company: CompanyName = None
    within_hours: Annotated[
        float,
        Field(ge=0, le=MAX_WINDOW_HOURS, description="Include deadlines up to this many hours ahead."),
        BeforeValidator(not_a_yes_no),
    ] = 2
    limit: Annotated[
        int, Field(ge=1, le=100, description="Rows per list, soonest first."), BeforeValidator(not_a_yes_no)
    ] = 20


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
    minutes_left: int | None = Field(None, description="Negative: breached. Absent while the clock is paused.")


class SlaRisk(BaseModel):
    tenant: str
    now: datetime
    breached: int = Field(description="Tickets whose next deadline has passed.")
    due_soon: int = Field(description="Tickets whose next deadline falls within the window.")
    tickets: list[SlaTicket] = Field(description="Soonest deadline first, at most limit.")
    paused: int = Field(description="Tickets in a waiting status (SLA clock stopped) with a deadline in range.")
    paused_tickets: list[SlaTicket] = Field(description="Soonest first, at most limit.")
    complete: bool = Field(description=f"False: over {MAX_TICKETS:,} tickets matched; these are the first by id.")
    notice: str = untrusted_notice("summary and company")


def next_milestone(ticket: Ticket) -> Milestone | None:
    """The milestone ConnectWise measures the ticket against next; None once it is resolved."""
    if ticket.date_resolved is not None:
        return None
    if ticket.date_responded is None:
        return "respond"
    return "plan" if ticket.date_resplan is None else "resolve"


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


def _deadline(ticket: Ticket, milestone: Milestone) -> datetime | None:
    if milestone == "respond":
        return ticket.respond_by_goal
    return ticket.resplan_goal if milestone == "plan" else ticket.resolution_goal


async def find_sla_risk(session: TenantSession, request: SlaRiskRequest, *, now: datetime | None = None) -> SlaRisk:
    """One request per page of candidates (at most MAX_PAGES), plus the board lists not yet cached."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    scope = await board_scope(session, request.board, request.company)
    statuses = scope.statuses()
    conditions = cw.and_(scope.conditions, candidates(now + timedelta(hours=request.within_hours)))
    running: list[SlaTicket] = []
    paused: list[SlaTicket] = []
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
            ticket = Ticket.model_validate(item)
            milestone = next_milestone(ticket)
            deadline = _deadline(ticket, milestone) if milestone else None
            if milestone is None or deadline is None:
                continue  # the conditions leave these out; an unreadable date cannot be placed
            status = statuses.get(ticket.status.id) if ticket.status and ticket.status.id else None
            waiting = status is not None and status.escalation_status == WAITING
            row = SlaTicket(
                id=ticket.id,
                summary=ticket.summary,
                board=label(ticket.board),
                status=label(ticket.status),
                priority=label(ticket.priority),
                company=label(ticket.company),
                owner=ticket.owner.identifier if ticket.owner else None,
                milestone=milestone,
                deadline=deadline,
                minutes_left=None if waiting else math.floor((deadline - now).total_seconds() / 60),
            )
            (paused if waiting else running).append(row)
        if not found.has_next or not found.items:
            complete = True
            break
        page += 1
    running.sort(key=lambda row: (row.deadline, row.id))
    paused.sort(key=lambda row: (row.deadline, row.id))
    return SlaRisk(
        tenant=session.name,
        now=now,
        breached=sum(1 for row in running if row.deadline < now),
        due_soon=sum(1 for row in running if row.deadline >= now),
        tickets=running[: request.limit],
        paused=len(paused),
        paused_tickets=paused[: request.limit],
        complete=complete,
    )
