"""The demo's sandbox is seeded at the current hour: "this week" has tickets and SLA deadlines still lie ahead,
as on a real desk (the tests' sandboxes keep the fixed SEED_NOW)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from mcp import Client

from mcp_server_connectwise.server import build_demo_server


async def test_the_demo_has_this_weeks_tickets_and_deadlines_ahead(tmp_path):
    week_ago = (datetime.now(timezone.utc) - timedelta(days=7)).isoformat()
    async with Client(build_demo_server(tmp_path / "audit.jsonl")) as client:
        this_week = await client.call_tool("search_tickets", {"entered_after": week_ago, "limit": 5})
        at_risk = await client.call_tool("find_sla_risk", {"within_hours": 2})
    assert this_week.is_error is False and len(this_week.structured_content["tickets"]) == 5
    risk = at_risk.structured_content
    assert risk["due_soon"] > 0  # on the fixed SEED_NOW, a month back, every deadline is past
