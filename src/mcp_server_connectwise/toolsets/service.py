"""Toolset `service`: how the desk stands - tickets near or past their SLA deadlines, and a period's figures."""

from __future__ import annotations

from mcp_server_connectwise.services import desk_summary, sla_risk
from mcp_server_connectwise.services.desk_summary import MAX_TIMED, DeskSummary, DeskSummaryRequest
from mcp_server_connectwise.services.sla_risk import MAX_TICKETS, SlaRisk, SlaRiskRequest
from mcp_server_connectwise.toolsets.definition import Hint, ToolCall, ToolDefinition, Toolset


async def find_sla_risk(call: ToolCall, request: SlaRiskRequest) -> SlaRisk:
    """Open tickets whose next SLA deadline (respond, then resolution plan, then resolution) is past or within
    within_hours, soonest first, by ConnectWise's own deadlines. Waiting tickets (clock stopped) are listed
    apart. One request per 1,000 tickets found."""
    return await sla_risk.find_sla_risk(call.session, request)


def _sla_hint(result: SlaRisk) -> Hint:
    if not result.tickets and not result.paused_tickets:
        return Hint("No open ticket has an SLA deadline in range.", then=False)
    facts = []
    if not result.complete:
        facts.append(f"Over {MAX_TICKETS:,} tickets matched: give a board or company.")
    if (shown := len(result.tickets)) < result.breached + result.due_soon:
        facts.append(f"{result.breached + result.due_soon - shown} more at risk: raise limit or narrow.")
    return Hint(" ".join(facts))


async def service_desk_summary(call: ToolCall, request: DeskSummaryRequest) -> DeskSummary:
    """A period's figures: tickets opened and closed, open now by status and by priority, median and 90th
    percentile first-response and resolution times of tickets closed in it. One request per count, sent
    together."""
    return await desk_summary.service_desk_summary(call.session, request)


def _summary_hint(result: DeskSummary) -> Hint:
    if result.times_complete:
        return Hint()
    return Hint(f"Times cover the first {MAX_TIMED:,} of {result.closed:,} closed tickets; shorten the period.")


TOOLSET = Toolset(
    "service",
    "see SLA risk and the desk's figures",
    reads=(
        ToolDefinition(
            find_sla_risk,
            title="Find tickets at SLA risk",
            read_only=True,
            idempotent=True,
            purpose="find tickets near or past their SLA deadlines",
            hint=_sla_hint,
            examples=({"board": "Service Desk", "within_hours": 2},),
            next_tools=("get_ticket_details", "update_ticket", "add_ticket_note"),
        ),
        ToolDefinition(
            service_desk_summary,
            title="Summarise the service desk",
            read_only=True,
            idempotent=True,
            purpose="see the desk's figures for a period",
            hint=_summary_hint,
            examples=({"since": "2026-10-01T00:00:00Z", "until": "2026-11-01T00:00:00Z", "board": "Service Desk"},),
            next_tools=("find_sla_risk", "search_tickets"),
            untrusted_output=False,
        ),
    ),
)
