"""update_ticket as a service: validation before any PATCH, the exact patch, and its request budget."""

from __future__ import annotations

from datetime import datetime

import httpx2
import pytest

from mcp_server_connectwise.connectwise import retry
from mcp_server_connectwise.connectwise.retry import RetryPolicy
from mcp_server_connectwise.services import write_recovery
from mcp_server_connectwise.services.errors import Failed, Look, OutcomeUnknown, Refused
from mcp_server_connectwise.services.updates import update_ticket

from support.faults import Rewriting, recorded_settle_waits, script_faults
from support.harness import sandbox_app, sandbox_session
from support.requests import changes


@pytest.fixture(autouse=True)
def no_settle_wait(monkeypatch):
    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 0.0)


def open_ticket(app, board="Service Desk", status="New"):
    return next(
        t for t in app.state.store["tickets"].values() if t["board"]["name"] == board and t["status"]["name"] == status
    )


def status_id(app, board, name):
    return next(
        s["id"] for s in app.state.store["statuses"].values() if s["board"]["name"] == board and s["name"] == name
    )


def methods(app):
    return [(r["method"], r["path"]) for r in app.state.request_log]


async def test_a_status_change_is_one_whole_reference_replaced():
    app = sandbox_app()
    ticket = open_ticket(app)
    result = await update_ticket(sandbox_session(app), changes(ticket["id"], status="in progress"))
    patch = app.state.request_log[-1]
    assert patch["method"] == "PATCH" and patch["path"] == f"/service/tickets/{ticket['id']}"
    assert patch["json"] == [
        {"op": "replace", "path": "status", "value": {"id": status_id(app, "Service Desk", "In Progress")}}
    ]
    assert [(c.field, c.before, c.after) for c in result.changes] == [("status", "New", "In Progress")]
    assert app.state.store["tickets"][ticket["id"]]["status"]["name"] == "In Progress"


async def test_warm_cache_costs_two_requests():
    app = sandbox_app()
    session = sandbox_session(app)
    first, second = [
        t for t in app.state.store["tickets"].values() if t["board"]["name"] == "Service Desk" and not t["closedFlag"]
    ][:2]
    await update_ticket(session, changes(first["id"], status="Scheduled"))
    app.state.request_log.clear()
    await update_ticket(session, changes(second["id"], status="Waiting on Vendor"))
    assert methods(app) == [("GET", f"/service/tickets/{second['id']}"), ("PATCH", f"/service/tickets/{second['id']}")]


async def test_a_bad_status_is_refused_with_the_valid_ones_and_nothing_is_sent():
    app = sandbox_app()
    ticket = open_ticket(app)
    with pytest.raises(Refused) as refused:
        await update_ticket(sandbox_session(app), changes(ticket["id"], status="Done-ish"))
    assert "'Done-ish' is not a status of board Service Desk" in str(refused.value)
    assert "Waiting on Customer" in str(refused.value) and "Old - Do Not Use" not in str(refused.value)
    assert all(method == "GET" for method, _ in methods(app))


async def test_a_status_of_another_board_is_refused():
    app = sandbox_app()
    ticket = open_ticket(app)
    with pytest.raises(Refused, match="'Acknowledged' is not a status of board Service Desk"):
        await update_ticket(sandbox_session(app), changes(ticket["id"], status="Acknowledged"))
    assert "PATCH" not in {method for method, _ in methods(app)}


async def test_an_inactive_status_is_refused():
    app = sandbox_app()
    with pytest.raises(Refused, match="not a status"):
        await update_ticket(sandbox_session(app), changes(open_ticket(app)["id"], status="Old - Do Not Use"))


async def test_a_stale_cache_is_refreshed_once_on_a_miss():
    app = sandbox_app()
    session = sandbox_session(app)
    ticket = open_ticket(app)
    await update_ticket(session, changes(ticket["id"], status="Assigned"))
    await session.client.post(
        "/service/boards/1/statuses",
        {
            "name": "Parts Ordered",
            "sortOrder": 20,
            "closedStatus": False,
            "timeEntryNotAllowed": False,
            "defaultFlag": False,
            "inactive": False,
        },
    )
    app.state.request_log.clear()
    result = await update_ticket(session, changes(ticket["id"], status="parts ordered"))
    assert result.changes[0].after == "Parts Ordered"
    assert methods(app) == [
        ("GET", f"/service/tickets/{ticket['id']}"),
        ("GET", "/service/boards/1/statuses"),
        ("PATCH", f"/service/tickets/{ticket['id']}"),
    ]


async def test_only_changed_fields_are_sent_and_no_change_sends_nothing():
    app = sandbox_app()
    session = sandbox_session(app)
    ticket = open_ticket(app)
    result = await update_ticket(
        session,
        changes(
            ticket["id"],
            status=ticket["status"]["name"],
            priority="Priority 1 - Emergency Response",
            severity=ticket["severity"],
        ),
    )
    assert app.state.request_log[-1]["json"] == [{"op": "replace", "path": "priority", "value": {"id": 1}}]
    assert [c.field for c in result.changes] == ["priority"]
    app.state.request_log.clear()
    again = await update_ticket(session, changes(ticket["id"], priority="priority 1 - emergency response"))
    assert again.patched is False and again.changes == []
    assert [m for m, _ in methods(app)] == ["GET"]


async def test_moving_board_takes_the_new_boards_default_status():
    app = sandbox_app()
    ticket = open_ticket(app)
    result = await update_ticket(sandbox_session(app), changes(ticket["id"], board="escalations"))
    assert app.state.request_log[-1]["json"] == [
        {"op": "replace", "path": "board", "value": {"id": 4}},
        {"op": "replace", "path": "status", "value": {"id": status_id(app, "Escalations", "New")}},
    ]
    assert {c.field: c.after for c in result.changes} == {"board": "Escalations", "status": "New"}


async def test_every_field_resolves_by_name():
    app = sandbox_app()
    ticket = open_ticket(app)
    result = await update_ticket(
        sandbox_session(app),
        changes(
            ticket["id"],
            owner="AKOWALSKI",
            type="Change Request",
            subtype="Network",
            summary="  VPN   down\u200b for everyone ",
            impact="High" if ticket["impact"] != "High" else "Low",
            required_date=datetime.fromisoformat("2026-12-01T10:00:00+01:00"),
            budget_hours=2.5,
        ),
    )
    sent = {op["path"]: op["value"] for op in app.state.request_log[-1]["json"]}
    assert sent["owner"] == {"id": 4} and sent["summary"] == "VPN down for everyone"
    assert sent["requiredDate"] == "2026-12-01T09:00:00Z" and sent["budgetHours"] == 2.5
    assert {"type", "subType", "impact"} <= set(sent)
    assert {c.field for c in result.changes} == set(sent)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(), "Nothing to change"),
        (dict(owner="kfischer"), "no active member 'kfischer'"),
        (dict(priority="Urgent!!"), "no priority 'Urgent!!'"),
        (dict(board="Nowhere"), "no board 'Nowhere'"),
        (dict(item="Toaster"), "no item 'Toaster' on board Service Desk"),
        (dict(required_date=datetime(2026, 12, 1, 10)), "has no time zone"),
    ],
)
async def test_invalid_changes_are_refused_before_any_write(fields, message):
    app = sandbox_app()
    with pytest.raises(Refused, match=message):
        await update_ticket(sandbox_session(app), changes(open_ticket(app)["id"], **fields))
    assert "PATCH" not in {method for method, _ in methods(app)}


async def test_an_unknown_ticket_is_refused():
    with pytest.raises(Refused, match="Ticket 5 was not found in tenant acme"):
        await update_ticket(sandbox_session(), changes(5, status="New"))


# --- ConnectWise's answer is checked: a change is reported only once the ticket shows it ------------------


class IgnoresPatchesOf(Rewriting):
    """Sends the named fields' patch operations as sub-paths, which the sandbox (like ConnectWise) answers with
    200 and the ticket unchanged: the silent false success."""

    def __init__(self, app, *paths: str) -> None:
        super().__init__(app)
        self.paths = paths

    def request_json(self, request, body):
        if request.method != "PATCH":
            return body
        return [{**op, "path": f"{op['path']}/id"} if op["path"] in self.paths else op for op in body]


async def test_a_patch_answered_200_without_the_change_is_reported_not_applied():
    app = sandbox_app()
    ticket = open_ticket(app)
    session = sandbox_session(app, transport=IgnoresPatchesOf(app, "priority", "summary"))
    with pytest.raises(Failed) as failed:
        await update_ticket(
            session,
            changes(
                ticket["id"],
                status="In Progress",
                priority="Priority 1 - Emergency Response",
                summary="Printer on fire",
            ),
        )
    assert str(failed.value) == (
        f"Ticket {ticket['id']} (tenant acme) was not changed as asked: priority, summary did not change; "
        "ConnectWise answered 200 without applying it (the silent false success of a PATCH). status did change. "
        "Read the ticket before trying again."
    )
    assert failed.value.outcome == "error" and failed.value.look is Look.READ_TICKET
    assert app.state.store["tickets"][ticket["id"]]["status"]["name"] == "In Progress"


async def test_an_answer_without_the_ticket_is_checked_by_reading_it_back():
    app = sandbox_app()
    ticket = open_ticket(app)

    class AnswersPatchWithNothing(Rewriting):
        def response_json(self, request, body):
            return {} if request.method == "PATCH" else body

    result = await update_ticket(
        sandbox_session(app, transport=AnswersPatchWithNothing(app)), changes(ticket["id"], status="In Progress")
    )
    assert [(c.field, c.after) for c in result.changes] == [("status", "In Progress")]
    path = f"/service/tickets/{ticket['id']}"
    assert methods(app)[-2:] == [("PATCH", path), ("GET", path)]


def no_backoff(monkeypatch):
    monkeypatch.setattr(retry, "backoff", lambda *args, **kwargs: 0.0)


async def test_a_patch_without_an_answer_that_was_applied_is_read_back_and_reported_done(monkeypatch):
    no_backoff(monkeypatch)
    app = sandbox_app()
    ticket = open_ticket(app)
    script_faults(app, patch=["drop_after_commit"] * RetryPolicy().max_attempts)
    result = await update_ticket(sandbox_session(app), changes(ticket["id"], status="In Progress"))
    assert [(c.field, c.before, c.after) for c in result.changes] == [("status", "New", "In Progress")]
    assert methods(app)[-1] == ("GET", f"/service/tickets/{ticket['id']}")


async def test_a_patch_without_an_answer_is_read_back_after_the_settle_wait_and_a_miss_is_unknown(monkeypatch):
    no_backoff(monkeypatch)
    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 0.25)
    waits = recorded_settle_waits(monkeypatch)
    app = sandbox_app()
    ticket = open_ticket(app)
    script_faults(app, patch=["drop_before"] * RetryPolicy().max_attempts)
    with pytest.raises(OutcomeUnknown) as unknown:
        await update_ticket(sandbox_session(app), changes(ticket["id"], status="In Progress"))
    assert waits == [0.25]
    assert unknown.value.outcome == "unknown"
    assert str(unknown.value) == (
        f"It is unknown whether ticket {ticket['id']} (tenant acme) was changed as asked: ConnectWise gave no "
        "answer to the change, and the ticket read back still shows the old value of status; ConnectWise may "
        "still apply it. Check it before sending the change again."
    )
    assert unknown.value.look is Look.READ_TICKET
    assert app.state.store["tickets"][ticket["id"]]["status"]["name"] == "New"


@pytest.mark.parametrize("answer", [{"id": None}, {"id": "x"}, [], "ok"])
async def test_a_patch_answered_with_no_readable_ticket_is_checked_by_reading_it_back(answer):
    app = sandbox_app()
    ticket = open_ticket(app)

    class AnswersPatchWith(Rewriting):
        def response_json(self, request, body):
            return answer if request.method == "PATCH" else body

    result = await update_ticket(
        sandbox_session(app, transport=AnswersPatchWith(app)), changes(ticket["id"], status="In Progress")
    )
    assert [(c.field, c.after) for c in result.changes] == [("status", "In Progress")]
    assert methods(app)[-1] == ("GET", f"/service/tickets/{ticket['id']}")


class RawAnswer(httpx2.AsyncBaseTransport):
    """The sandbox, except that the answer to the first request of `method` gets the body `content`."""

    def __init__(self, app, method: str, content: bytes) -> None:
        self.inner = httpx2.ASGITransport(app=app)
        self.method, self.content = method, content

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if request.method != self.method or self.content is None:
            return response
        content, self.content = self.content, None
        return httpx2.Response(response.status_code, headers={"content-type": "application/json"}, content=content)


@pytest.mark.parametrize("content", [b"", b"<html>ok</html>"])
async def test_a_patch_answered_2xx_with_an_empty_or_non_json_body_is_read_back(content):
    app = sandbox_app()
    ticket = open_ticket(app)
    result = await update_ticket(
        sandbox_session(app, transport=RawAnswer(app, "PATCH", content)), changes(ticket["id"], status="In Progress")
    )
    assert [(c.field, c.after) for c in result.changes] == [("status", "In Progress")]


async def test_a_read_back_without_a_readable_ticket_leaves_the_outcome_unknown(monkeypatch):
    no_backoff(monkeypatch)
    app = sandbox_app()
    ticket = open_ticket(app)
    script_faults(app, patch=["drop_after_commit"] * RetryPolicy().max_attempts)

    class ReadsBackNothing(Rewriting):
        def response_json(self, request, body):
            return (
                {"id": None}
                if request.method == "GET"
                and "tickets" in request.url.path
                and app.state.request_log[-1]["method"] == "GET"
                and any(entry["method"] == "PATCH" for entry in app.state.request_log)
                else body
            )

    with pytest.raises(OutcomeUnknown) as unknown:
        await update_ticket(
            sandbox_session(app, transport=ReadsBackNothing(app)), changes(ticket["id"], status="In Progress")
        )
    assert "ConnectWise answered without the ticket" in str(unknown.value)


class KeepsRequiredDateToTheMinute(Rewriting):
    """Stores a ticket's requiredDate without its seconds, as ConnectWise may."""

    def request_json(self, request, body):
        if request.method == "PATCH":
            return [{**op, "value": op["value"][:17] + "00Z"} if op["path"] == "requiredDate" else op for op in body]
        return body


async def test_a_required_date_kept_to_the_minute_is_the_one_sent():
    app = sandbox_app()
    ticket = open_ticket(app)
    session = sandbox_session(app, transport=KeepsRequiredDateToTheMinute(app))
    due = datetime.fromisoformat("2031-05-06T07:08:09+00:00")
    result = await update_ticket(session, changes(ticket["id"], required_date=due))
    assert result.patched and [c.field for c in result.changes] == ["requiredDate"]
    patches = methods(app).count(("PATCH", f"/service/tickets/{ticket['id']}"))
    again = await update_ticket(session, changes(ticket["id"], required_date=due))  # already so: not sent
    assert not again.patched
    assert methods(app).count(("PATCH", f"/service/tickets/{ticket['id']}")) == patches


async def test_a_patch_without_an_answer_whose_read_back_fails_has_an_unknown_outcome(monkeypatch):
    no_backoff(monkeypatch)
    app = sandbox_app()
    ticket = open_ticket(app)
    attempts = RetryPolicy().max_attempts
    reads_before_the_patch = 2  # the ticket, the board's statuses
    script_faults(
        app, patch=["drop_after_commit"] * attempts, get=[None] * reads_before_the_patch + ["error_503"] * attempts
    )
    with pytest.raises(OutcomeUnknown) as unknown:
        await update_ticket(sandbox_session(app), changes(ticket["id"], status="In Progress"))
    assert str(unknown.value) == (
        f"It is unknown whether ticket {ticket['id']} (tenant acme) was changed: ConnectWise gave no answer to the "
        "change, and reading the ticket back failed too (HTTP 503). Check it before sending the change again."
    )
    assert unknown.value.look is Look.READ_TICKET
