"""update_ticket as a service: validation before any PATCH, the exact patch, and its request budget."""

from __future__ import annotations

from datetime import datetime

import pytest

from mcp_server_connectwise.services.errors import Refused
from mcp_server_connectwise.services.updates import TicketChanges, update_ticket

from test_server_harness import sandbox_app, sandbox_session


def open_ticket(app, board="Service Desk", status="New"):
    return next(t for t in app.state.store["tickets"].values()
                if t["board"]["name"] == board and t["status"]["name"] == status)


def status_id(app, board, name):
    return next(s["id"] for s in app.state.store["statuses"].values()
                if s["board"]["name"] == board and s["name"] == name)


def methods(app):
    return [(r["method"], r["path"]) for r in app.state.request_log]


async def test_a_status_change_is_one_whole_reference_replaced():
    app = sandbox_app()
    ticket = open_ticket(app)
    result = await update_ticket(sandbox_session(app), ticket["id"], TicketChanges(status="in progress"))
    patch = app.state.request_log[-1]
    assert patch["method"] == "PATCH" and patch["path"] == f"/service/tickets/{ticket['id']}"
    assert patch["json"] == [{"op": "replace", "path": "status",
                              "value": {"id": status_id(app, "Service Desk", "In Progress")}}]
    assert [(c.field, c.before, c.after) for c in result.changes] == [("status", "New", "In Progress")]
    assert app.state.store["tickets"][ticket["id"]]["status"]["name"] == "In Progress"


async def test_warm_cache_costs_two_requests():
    app = sandbox_app()
    session = sandbox_session(app)
    first, second = [t for t in app.state.store["tickets"].values()
                     if t["board"]["name"] == "Service Desk" and not t["closedFlag"]][:2]
    await update_ticket(session, first["id"], TicketChanges(status="Scheduled"))
    app.state.request_log.clear()
    await update_ticket(session, second["id"], TicketChanges(status="Waiting on Vendor"))
    assert methods(app) == [("GET", f"/service/tickets/{second['id']}"), ("PATCH", f"/service/tickets/{second['id']}")]


async def test_a_bad_status_is_refused_with_the_valid_ones_and_nothing_is_sent():
    app = sandbox_app()
    ticket = open_ticket(app)
    with pytest.raises(Refused) as refused:
        await update_ticket(sandbox_session(app), ticket["id"], TicketChanges(status="Done-ish"))
    assert "'Done-ish' is not a status of board Service Desk" in str(refused.value)
    assert "Waiting on Customer" in str(refused.value) and "Old - Do Not Use" not in str(refused.value)
    assert all(method == "GET" for method, _ in methods(app))


async def test_a_status_of_another_board_is_refused():
    app = sandbox_app()
    ticket = open_ticket(app)
    with pytest.raises(Refused, match="'Acknowledged' is not a status of board Service Desk"):
        await update_ticket(sandbox_session(app), ticket["id"], TicketChanges(status="Acknowledged"))
    assert "PATCH" not in {method for method, _ in methods(app)}


async def test_an_inactive_status_is_refused():
    app = sandbox_app()
    with pytest.raises(Refused, match="not a status"):
        await update_ticket(sandbox_session(app), open_ticket(app)["id"], TicketChanges(status="Old - Do Not Use"))


async def test_a_stale_cache_is_refreshed_once_on_a_miss():
    app = sandbox_app()
    session = sandbox_session(app)
    ticket = open_ticket(app)
    await update_ticket(session, ticket["id"], TicketChanges(status="Assigned"))
    await session.client.post("/service/boards/1/statuses", {
        "name": "Parts Ordered", "sortOrder": 20, "closedStatus": False, "timeEntryNotAllowed": False,
        "defaultFlag": False, "inactive": False,
    })
    app.state.request_log.clear()
    result = await update_ticket(session, ticket["id"], TicketChanges(status="parts ordered"))
    assert result.changes[0].after == "Parts Ordered"
    assert methods(app) == [("GET", f"/service/tickets/{ticket['id']}"), ("GET", "/service/boards/1/statuses"),
                            ("PATCH", f"/service/tickets/{ticket['id']}")]


async def test_only_changed_fields_are_sent_and_no_change_sends_nothing():
    app = sandbox_app()
    session = sandbox_session(app)
    ticket = open_ticket(app)
    result = await update_ticket(session, ticket["id"], TicketChanges(
        status=ticket["status"]["name"], priority="Priority 1 - Emergency Response", severity=ticket["severity"]))
    assert app.state.request_log[-1]["json"] == [{"op": "replace", "path": "priority", "value": {"id": 1}}]
    assert [c.field for c in result.changes] == ["priority"]
    app.state.request_log.clear()
    again = await update_ticket(session, ticket["id"], TicketChanges(priority="priority 1 - emergency response"))
    assert again.patched is False and again.changes == []
    assert [m for m, _ in methods(app)] == ["GET"]


async def test_moving_board_takes_the_new_boards_default_status():
    app = sandbox_app()
    ticket = open_ticket(app)
    result = await update_ticket(sandbox_session(app), ticket["id"], TicketChanges(board="escalations"))
    assert app.state.request_log[-1]["json"] == [
        {"op": "replace", "path": "board", "value": {"id": 4}},
        {"op": "replace", "path": "status", "value": {"id": status_id(app, "Escalations", "New")}},
    ]
    assert {c.field: c.after for c in result.changes} == {"board": "Escalations", "status": "New"}


async def test_every_field_resolves_by_name():
    app = sandbox_app()
    ticket = open_ticket(app)
    result = await update_ticket(sandbox_session(app), ticket["id"], TicketChanges(
        owner="AKOWALSKI", type="Change Request", subtype="Network", summary="  VPN   down\u200b for everyone ",
        impact="High" if ticket["impact"] != "High" else "Low", required_date=datetime.fromisoformat("2026-12-01T10:00:00+01:00"),
        budget_hours=2.5,
    ))
    sent = {op["path"]: op["value"] for op in app.state.request_log[-1]["json"]}
    assert sent["owner"] == {"id": 4} and sent["summary"] == "VPN down for everyone"
    assert sent["requiredDate"] == "2026-12-01T09:00:00Z" and sent["budgetHours"] == 2.5
    assert {"type", "subType", "impact"} <= set(sent)
    assert {c.field for c in result.changes} == set(sent)


@pytest.mark.parametrize(("changes", "message"), [
    (TicketChanges(), "Nothing to change"),
    (TicketChanges(owner="kfischer"), "no active member 'kfischer'"),
    (TicketChanges(priority="Urgent!!"), "no priority 'Urgent!!'"),
    (TicketChanges(board="Nowhere"), "no board 'Nowhere'"),
    (TicketChanges(item="Toaster"), "no item 'Toaster' on board Service Desk"),
    (TicketChanges(required_date=datetime(2026, 12, 1, 10)), "has no time zone"),
])
async def test_invalid_changes_are_refused_before_any_write(changes, message):
    app = sandbox_app()
    with pytest.raises(Refused, match=message):
        await update_ticket(sandbox_session(app), open_ticket(app)["id"], changes)
    assert "PATCH" not in {method for method, _ in methods(app)}


async def test_an_unknown_ticket_is_refused():
    with pytest.raises(Refused, match="Ticket 5 was not found in tenant acme"):
        await update_ticket(sandbox_session(), 5, TicketChanges(status="New"))
