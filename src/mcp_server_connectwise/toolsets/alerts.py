"""Toolset `alerts`: monitoring alerts into tickets, one ticket per alert."""

from __future__ import annotations

from mcp_server_connectwise.services import alerts
from mcp_server_connectwise.services.alerts import AlertHandled, AlertReport
from mcp_server_connectwise.toolsets.definition import Hint, ToolCall, ToolDefinition, Toolset


async def report_alert(call: ToolCall, report: AlertReport) -> AlertHandled:
    """Report a monitoring alert raised or cleared: one ticket per source and alert_id on the tenant's alert
    board. Repeats are coalesced into a note per interval, a clear closes the ticket unless a person worked
    it, a recurrence soon after reopens it; below the tenant's min_severity nothing is written."""
    handled = await alerts.report_alert(call.session, report)
    call.session.metrics.alert(handled.outcome)
    if handled.outcome in ("created", "closed", "reopened") and handled.ticket_id is not None:
        call.wrote("ticket", handled.ticket_id, alert=handled.key, outcome=handled.outcome)
    if handled.note_id is not None:
        call.wrote("note", handled.note_id, ticket_id=handled.ticket_id, alert=handled.key)
    return handled


def _hint(result: AlertHandled) -> Hint:
    return Hint(then=result.ticket_id is not None)  # a skipped alert has no ticket to read


TOOLSET = Toolset(
    "alerts",
    "monitoring alerts into tickets",
    writes=(
        ToolDefinition(
            report_alert,
            title="Report a monitoring alert",
            read_only=False,
            destructive=True,  # a clear closes the ticket
            purpose="report a monitoring alert",
            hint=_hint,
            examples=(
                {
                    "source": "datto-rmm",
                    "alert_id": "disk-c-acme-dc01",
                    "state": "raised",
                    "severity": "high",
                    "company": "ACME",
                    "summary": "Disk C: below 10% free on ACME-DC01",
                    "device": "ACME-DC01",
                },
            ),
            next_tools=("get_ticket_details",),
            free_text=frozenset({"summary", "details"}),
        ),
    ),
)
