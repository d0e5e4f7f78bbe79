"""service_desk_summary as a service over the sandbox: every figure equals the one worked out here from the
store's raw records."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import httpx2
import pytest

from mcp_server_connectwise.config.models import MAX_REQUESTS_PER_MINUTE
from mcp_server_connectwise.sandbox.seed import SEED_NOW
from mcp_server_connectwise.sandbox.store import iso, parse_iso
from mcp_server_connectwise.services.desk_summary import (
    MAX_TIMED,
    DeskSummaryRequest,
    nearest_rank,
    service_desk_summary,
)
from mcp_server_connectwise.services.errors import Refused

from support.harness import sandbox_app, sandbox_session
from support.transports import InFlight

UNTIL = datetime.fromtimestamp(SEED_NOW, timezone.utc)
SINCE = datetime(2026, 10, 1, tzinfo=timezone.utc)


def percentile(seconds: list[float], percent: int) -> float | None:
    """Nearest rank, in minutes to one decimal: the ceil(p% of n)-th smallest value."""
    if not seconds:
        return None
    return round(sorted(seconds)[math.ceil(percent / 100 * len(seconds)) - 1] / 60, 1)


def figures(store, since: datetime, until: datetime, board: str | None, company: str | None, timed: int) -> dict:
    """The summary's figures from the store; the times of the first `timed` tickets closed (by id)."""
    start, end = iso(since.timestamp()), iso(until.timestamp())

    def in_scope(ticket) -> bool:
        named = company.casefold() if company else None
        return (board is None or ticket["board"]["name"].casefold() == board.casefold()) and (
            named is None
            or named in ticket["company"]["name"].casefold()
            or ticket["company"]["identifier"].casefold() == named
        )

    tickets = [t for t in store["tickets"].values() if in_scope(t)]
    open_now = [t for t in tickets if not t["closedFlag"]]
    closed = [t for t in tickets if t["closedFlag"] and start <= t["closedDate"] < end][:timed]
    boards = [b for b in store["boards"].values() if board is None or b["name"].casefold() == board.casefold()]
    by_status = [
        {"board": b["name"], "status": s["name"], "open": n}
        for b in boards
        for s in sorted(store.children("statuses", b["id"]), key=lambda s: (s["sortOrder"], s["id"]))
        if not s["closedStatus"] and (n := sum(1 for t in open_now if t["status"]["id"] == s["id"]))
    ]
    by_priority = [
        {"priority": p["name"], "open": n}
        for p in store["priorities"].values()
        if (n := sum(1 for t in open_now if t["priority"]["id"] == p["id"]))
    ]
    entered = {t["id"]: parse_iso(t["_info"]["dateEntered"]) for t in closed}
    responses = [parse_iso(t["dateResponded"]) - entered[t["id"]] for t in closed if "dateResponded" in t]
    resolutions = [parse_iso(t["closedDate"]) - entered[t["id"]] for t in closed]
    return {
        "opened": sum(1 for t in tickets if start <= t["_info"]["dateEntered"] < end),
        "closed": sum(1 for t in tickets if t["closedFlag"] and start <= t["closedDate"] < end),
        "open_now": len(open_now),
        "open_by_status": by_status,
        "open_by_priority": by_priority,
        "first_response": {
            "tickets": len(responses),
            "median_minutes": percentile(responses, 50),
            "p90_minutes": percentile(responses, 90),
        },
        "resolution": {
            "tickets": len(resolutions),
            "median_minutes": percentile(resolutions, 50),
            "p90_minutes": percentile(resolutions, 90),
        },
    }


def test_the_nearest_rank_is_an_observed_value_the_median_the_lower_middle_one():
    assert nearest_rank([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 50) == 5.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 90) == 9.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0], 90) == 10.0
    assert nearest_rank([7.0], 90) == nearest_rank([7.0], 50) == 7.0
    assert nearest_rank([3.0, 8.0], 50) == 3.0


@pytest.mark.parametrize(
    ("board", "company"), [(None, None), ("service desk", None), (None, "acme"), ("Alerts", "OBrienDental")]
)
async def test_every_figure_is_the_stores(board, company):
    app = sandbox_app()
    transport = InFlight(httpx2.ASGITransport(app=app))
    # The highest request budget: at the default one the counts leave paced at its rate (10 a second).
    session = sandbox_session(app, transport=transport, requests_per_minute=MAX_REQUESTS_PER_MINUTE)
    result = await service_desk_summary(
        session, DeskSummaryRequest(board=board, company=company, since=SINCE, until=UNTIL)
    )
    store = app.state.store
    answered = result.model_dump(mode="json", exclude={"tenant", "since", "until", "times_complete"}, exclude_none=True)
    assert answered == {
        k: v for k, v in figures(store, SINCE, UNTIL, board, company, MAX_TIMED).items() if v is not None
    }
    assert result.times_complete and result.closed > 0 and result.first_response.tickets > 0
    # One count per figure (each open status in use on the boards in scope: named, else active; each priority),
    # sent together.
    counts = [r for r in app.state.request_log if r["path"] == "/service/tickets/count"]
    boards = [
        b
        for b in store["boards"].values()
        if (b["name"].casefold() == board.casefold() if board else not b["inactiveFlag"])
    ]
    open_statuses = [
        s for b in boards for s in store.children("statuses", b["id"]) if not s["closedStatus"] and not s["inactive"]
    ]
    assert len(counts) == 3 + len(open_statuses) + len(store["priorities"])
    assert transport.most > 5
    [page] = [r for r in app.state.request_log if r["path"] == "/service/tickets"]
    assert page["query"]["fields"] == "id,_info/dateEntered,dateResponded,closedDate"


async def test_a_period_holds_its_first_moment_and_not_its_last():
    app = sandbox_app()
    tickets = [t for t in app.state.store["tickets"].values() if t["closedFlag"]]
    # Each end falls on a ticket's close and another's entry.
    since = datetime.fromisoformat(tickets[10]["closedDate"])
    until = datetime.fromisoformat(tickets[-10]["closedDate"])
    entered_at_since = dict(
        tickets[11], id=10_001, _info={**tickets[11]["_info"], "dateEntered": iso(since.timestamp())}
    )
    entered_at_until = dict(
        tickets[12], id=10_002, _info={**tickets[12]["_info"], "dateEntered": iso(until.timestamp())}
    )
    for ticket in (entered_at_since, entered_at_until):
        app.state.store.put("tickets", ticket)
    session = sandbox_session(app, requests_per_minute=MAX_REQUESTS_PER_MINUTE)
    result = await service_desk_summary(session, DeskSummaryRequest(since=since, until=until))
    expected = figures(app.state.store, since, until, None, None, MAX_TIMED)
    assert (result.opened, result.closed) == (expected["opened"], expected["closed"])
    assert result.resolution.model_dump() == expected["resolution"]


async def test_the_times_stop_at_five_pages_and_the_answer_says_so():
    app = sandbox_app(tickets=9_000)
    since = UNTIL - timedelta(days=180)  # over 5,000 tickets closed
    session = sandbox_session(app, requests_per_minute=MAX_REQUESTS_PER_MINUTE)
    result = await service_desk_summary(session, DeskSummaryRequest(since=since, until=UNTIL))
    expected = figures(app.state.store, since, UNTIL, None, None, MAX_TIMED)
    assert result.closed == expected["closed"] > MAX_TIMED and not result.times_complete
    assert result.resolution.model_dump() == expected["resolution"] and result.resolution.tickets == MAX_TIMED
    assert result.first_response.model_dump() == expected["first_response"]
    pages = [r["query"]["page"] for r in app.state.request_log if r["path"] == "/service/tickets"]
    assert pages == ["1", "2", "3", "4", "5"]


async def test_an_unknown_board_is_refused_with_the_boards_there_are():
    app = sandbox_app()
    with pytest.raises(Refused, match=r"There is no board 'Help Desk' in tenant acme, .*; boards: Service Desk"):
        await service_desk_summary(sandbox_session(app), DeskSummaryRequest(board="Help Desk", since=SINCE))
    assert [r["path"] for r in app.state.request_log] == ["/service/boards"]


@pytest.mark.parametrize(
    ("since", "until", "refusal"),
    [
        (UNTIL, UNTIL, "is not before until"),
        (datetime(2026, 10, 1), None, "since 2026-10-01T00:00:00 has no time zone"),
        (datetime(1700, 1, 1, tzinfo=timezone.utc), UNTIL, "outside the dates ConnectWise can store"),
        (datetime(2999, 1, 1, tzinfo=timezone.utc), None, "is not before until"),
    ],
)
async def test_a_period_that_cannot_hold_a_ticket_is_refused_before_any_request(since, until, refusal):
    app = sandbox_app()
    request = DeskSummaryRequest.model_construct(board=None, company=None, since=since, until=until)
    with pytest.raises(Refused, match=refusal):
        await service_desk_summary(sandbox_session(app), request)
    assert app.state.request_log == []
