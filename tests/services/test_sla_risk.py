"""find_sla_risk as a service over the sandbox: its rows are the store's tickets, worked out here from the raw
records at the sandbox's SEED_NOW."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from mcp_server_connectwise.connectwise.conditions import parse
from mcp_server_connectwise.sandbox.seed import SEED_NOW
from mcp_server_connectwise.sandbox.store import parse_iso
from mcp_server_connectwise.services.errors import Refused
from mcp_server_connectwise.services.sla_risk import FIELDS, MAX_TICKETS, SlaRiskRequest, find_sla_risk

from support.harness import sandbox_app, sandbox_session

NOW = datetime.fromtimestamp(SEED_NOW, timezone.utc)


def at_risk(store, now: float, within_hours: float) -> tuple[list[tuple], list[tuple]]:
    """(id, milestone, deadline, minutes left) of the open tickets whose next deadline is at or before now +
    the window, soonest first: those whose status waits (paused, minutes left None) and the others."""
    statuses = store["statuses"]
    running, paused = [], []
    for ticket in store["tickets"].values():
        if ticket["closedFlag"] or "dateResolved" in ticket:
            continue
        if "dateResponded" not in ticket:
            milestone, field = "respond", "respondByGoalUTC"
        elif "dateResplan" not in ticket:
            milestone, field = "plan", "resplanGoalUTC"
        else:
            milestone, field = "resolve", "resolutionGoalUTC"
        if field not in ticket or parse_iso(ticket[field]) > now + within_hours * 3600:
            continue
        deadline = parse_iso(ticket[field])
        if statuses[ticket["status"]["id"]]["escalationStatus"] == "NoEscalation":
            paused.append((ticket["id"], milestone, deadline, None))
        else:
            running.append((ticket["id"], milestone, deadline, math.floor((deadline - now) / 60)))
    return sorted(running, key=lambda r: (r[2], r[0])), sorted(paused, key=lambda r: (r[2], r[0]))


def rows(tickets) -> list[tuple]:
    return [(t.id, t.milestone, t.deadline.timestamp(), t.minutes_left) for t in tickets]


async def test_tickets_at_risk_are_the_stores_soonest_first_with_waiting_ones_apart():
    app = sandbox_app()
    store = app.state.store
    resolved = at_risk(store, SEED_NOW, 2)[0][0][0]  # resolved, not yet closed: no milestone left
    store.put("tickets", {**store["tickets"][resolved], "dateResolved": "2026-11-02T16:00:00Z"})
    session = sandbox_session(app)
    result = await find_sla_risk(session, SlaRiskRequest(limit=100), now=NOW)
    running, paused = at_risk(store, SEED_NOW, 2)
    assert rows(result.tickets) == running and rows(result.paused_tickets) == paused
    assert resolved not in {r[0] for r in running}
    assert result.breached == sum(1 for r in running if r[3] < 0) > 10
    assert result.due_soon == sum(1 for r in running if r[3] >= 0) >= 3  # due within 2 h, none yet breached
    assert all(0 <= r[3] <= 120 for r in running[result.breached :])
    assert result.paused == len(paused) > 5 and result.complete
    assert {r[1] for r in running} == {"respond", "plan", "resolve"}
    # One request for the tickets, trimmed to the columns shown; the rest are the board lists, cold.
    [search] = [r for r in app.state.request_log if r["path"] == "/service/tickets"]
    assert search["query"]["fields"] == ",".join(FIELDS) and search["query"]["pageSize"] == "1000"
    assert all(r["path"].startswith("/service/boards") for r in app.state.request_log if r is not search)
    # The conditions select exactly these tickets: nothing is read to be thrown away.
    selected = await session.client.count("/service/tickets", conditions=parse(search["query"]["conditions"]))
    assert selected == len(running) + len(paused)


async def test_the_window_board_company_and_limit_narrow_it():
    app = sandbox_app()
    session = sandbox_session(app)
    store = app.state.store["tickets"]
    running, paused = at_risk(app.state.store, SEED_NOW, 0)
    result = await find_sla_risk(session, SlaRiskRequest(within_hours=0, limit=100), now=NOW)
    assert rows(result.tickets) == running and result.due_soon == 0 and result.breached == len(running)
    result = await find_sla_risk(session, SlaRiskRequest(board="escalations", limit=100), now=NOW)
    running, paused = at_risk(app.state.store, SEED_NOW, 2)
    on_board = [r for r in running if store[r[0]]["board"]["name"] == "Escalations"]
    assert on_board and rows(result.tickets) == on_board
    assert {t.board for t in result.paused_tickets} <= {"Escalations"}
    company = store[running[0][0]]["company"]
    result = await find_sla_risk(session, SlaRiskRequest(company=company["identifier"], limit=2), now=NOW)
    of_company = [r for r in running if store[r[0]]["company"]["id"] == company["id"]]
    assert rows(result.tickets) == of_company[:2]
    assert result.breached + result.due_soon == len(of_company)


async def test_an_unknown_board_is_refused_with_the_boards_there_are_and_no_ticket_is_read():
    app = sandbox_app()
    with pytest.raises(Refused, match=r"There is no board 'Helpdesk' in tenant acme, .*boards: Service Desk, Alerts"):
        await find_sla_risk(sandbox_session(app), SlaRiskRequest(board="Helpdesk"), now=NOW)
    assert [r["path"] for r in app.state.request_log] == ["/service/boards"]


async def test_at_most_three_pages_are_read_and_the_answer_says_more_matched():
    app = sandbox_app(tickets=12_000)  # over 3,000 open tickets
    later = NOW + timedelta(days=3650)  # every open ticket's deadline has passed
    result = await find_sla_risk(sandbox_session(app), SlaRiskRequest(), now=later)
    searches = [r for r in app.state.request_log if r["path"] == "/service/tickets"]
    assert [r["query"]["page"] for r in searches] == ["1", "2", "3"]
    running, paused = at_risk(app.state.store, later.timestamp(), 2)
    first = sorted(r[0] for r in running + paused)[:MAX_TICKETS]
    assert len(running) + len(paused) > MAX_TICKETS and not result.complete
    assert result.breached + result.paused == MAX_TICKETS and result.due_soon == 0
    assert [t.id for t in result.tickets] == [r[0] for r in running if r[0] in set(first)][: SlaRiskRequest().limit]
