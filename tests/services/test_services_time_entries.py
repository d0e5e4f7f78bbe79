"""create_time_entry as a service: time validation, the no-time status rule, the entry sent."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mcp_server_connectwise.services.errors import Refused
from mcp_server_connectwise.services.time_entries import create_time_entry, work_period

from support.harness import sandbox_app, sandbox_session
from support.requests import entry

START = datetime(2026, 11, 2, 9, 0, tzinfo=timezone(timedelta(hours=1)))


def ticket_in(app, *, time_allowed: bool):
    statuses = app.state.store["statuses"]
    return next(
        t
        for t in app.state.store["tickets"].values()
        if bool(statuses[t["status"]["id"]]["timeEntryNotAllowed"]) is not time_allowed
    )


def test_period_from_hours_or_end_in_utc_whole_seconds():
    assert work_period(entry(1, START, hours=1.5)) == (
        datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc),
        datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc),
    )
    end = datetime(2026, 11, 2, 8, 45, 10, 999, tzinfo=timezone.utc)
    assert work_period(entry(1, START, end=end))[1] == end.replace(microsecond=0)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (entry(1, datetime(2026, 11, 2, 9), hours=1), "start 2026-11-02T09:00:00 has no time zone"),
        (entry(1, START, end=datetime(2026, 11, 2, 10)), "end 2026-11-02T10:00:00 has no time zone"),
        (entry(1, START), "either end or hours"),
        (entry(1, START, end=START + timedelta(hours=1), hours=1), "either end or hours"),
        (entry(1, START, end=START), "must be after start"),
        (entry(1, START, end=START - timedelta(minutes=5)), "must be after start"),
        (entry(1, START, end=START + timedelta(hours=24, seconds=1)), "at most 24 hours"),
        (entry(1, START, hours=25), "at most 24"),
        (entry(1, START, hours=0), "more than 0"),
    ],
)
def test_bad_periods_are_refused(request_, message):
    with pytest.raises(Refused, match=message):
        work_period(request_)


async def test_an_entry_is_charged_to_the_ticket_for_the_default_member():
    app = sandbox_app()
    ticket = ticket_in(app, time_allowed=True)
    created = await create_time_entry(
        sandbox_session(app),
        entry(
            ticket["id"],
            START,
            hours=0.5,
            notes="Reset\u200b the token",
            work_type="remote SUPPORT",
            billable_option="NoCharge",
        ),
    )
    post = app.state.request_log[-1]
    assert (post["method"], post["path"]) == ("POST", "/time/entries")
    assert post["json"] == {
        "chargeToType": "ServiceTicket",
        "chargeToId": ticket["id"],
        "member": {"id": 2},
        "timeStart": "2026-11-02T08:00:00Z",
        "timeEnd": "2026-11-02T08:30:00Z",
        "notes": "Reset the token",
        "workType": {"id": 1},
        "billableOption": "NoCharge",
    }
    assert created.member == "jsmith" and created.hours == 0.5
    assert app.state.store["timeEntries"][created.time_entry_id]["chargeToId"] == ticket["id"]


async def test_a_status_without_time_is_refused_before_anything_is_sent():
    app = sandbox_app()
    ticket = ticket_in(app, time_allowed=False)
    with pytest.raises(Refused, match=f"Ticket {ticket['id']} is in status .* does not allow time entries"):
        await create_time_entry(sandbox_session(app), entry(ticket["id"], START, hours=1))
    assert {r["method"] for r in app.state.request_log} == {"GET"}


async def test_no_member_anywhere_is_refused():
    app = sandbox_app()
    with pytest.raises(Refused, match="has no default member; give member"):
        await create_time_entry(sandbox_session(app, member=None), entry(1001, START, hours=1))
    assert app.state.request_log == []


async def test_an_unknown_work_type_or_member_is_refused():
    app = sandbox_app()
    ticket = ticket_in(app, time_allowed=True)
    with pytest.raises(Refused, match="no work type 'Juggling'"):
        await create_time_entry(sandbox_session(app), entry(ticket["id"], START, hours=1, work_type="Juggling"))
    with pytest.raises(Refused, match="no active member 'nobody'"):
        await create_time_entry(sandbox_session(app), entry(ticket["id"], START, hours=1, member="nobody"))


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (entry(1, datetime(1752, 12, 31, tzinfo=timezone.utc), hours=1), r"start 1752-12-31T00:00:00\+00:00 is"),
        (entry(1, START, end=datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1)))), "end 9999"),
        (entry(1, datetime(9999, 12, 31, 23, tzinfo=timezone.utc), hours=2), "ends after 9999-12-31"),
    ],
)
def test_times_connectwise_cannot_store_are_refused_by_the_service_itself(request_, message):
    with pytest.raises(Refused, match=message):
        work_period(request_)


async def test_an_impossible_member_is_refused_before_any_request():
    app = sandbox_app()
    with pytest.raises(Refused, match="member is empty"):
        await create_time_entry(sandbox_session(app), entry(1, START, hours=1, member="  "))
    assert app.state.request_log == []


def test_a_created_time_entry_may_have_no_member():
    from datetime import datetime, timezone

    from mcp_server_connectwise.services.time_entries import TimeEntryCreated

    moment = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)
    created = TimeEntryCreated(tenant="acme", time_entry_id=1, ticket_id=2, start=moment, end=moment, hours=1.0)
    assert created.member is None


async def test_an_identical_entry_is_refused_as_a_duplicate_naming_it_unless_allowed():
    app = sandbox_app()
    session = sandbox_session(app)
    ticket = ticket_in(app, time_allowed=True)
    first = await create_time_entry(session, entry(ticket["id"], START, hours=1, notes="Swapped the toner."))
    app.state.request_log.clear()
    # Same ticket, member, start and end (other notes): the same time would be billed twice.
    with pytest.raises(Refused) as refused:
        await create_time_entry(session, entry(ticket["id"], START, end=START + timedelta(hours=1), notes="Again."))
    assert str(refused.value) == (
        f"Ticket {ticket['id']} already has time entry {first.time_entry_id} for jsmith from 2026-11-02T08:00:00Z to "
        "2026-11-02T09:00:00Z, so this would log the same time twice; give allow_duplicate=true if it really is "
        "other work."
    )
    # One request looked: the ticket's entries for the member starting within a minute of the start.
    [read_ticket, look] = app.state.request_log
    assert (look["method"], look["path"]) == ("GET", "/time/entries")
    assert (
        "member/id = 2" in look["query"]["conditions"] and f"chargeToId = {ticket['id']}" in look["query"]["conditions"]
    )
    # Another end is other work; allow_duplicate logs the same again, without looking.
    other = await create_time_entry(session, entry(ticket["id"], START, hours=2))
    app.state.request_log.clear()
    again = await create_time_entry(session, entry(ticket["id"], START, hours=1, allow_duplicate=True))
    assert len({first.time_entry_id, other.time_entry_id, again.time_entry_id}) == 3
    assert [r["method"] for r in app.state.request_log] == ["GET", "POST"]  # the ticket, then the entry


async def test_a_start_in_the_future_is_refused_beyond_a_small_clock_skew():
    now = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
    assert work_period(entry(1, now + timedelta(minutes=4), hours=1), now=now)[0] == now + timedelta(minutes=4)
    with pytest.raises(
        Refused, match=r"start \(2026-11-02T12:06:00Z\) is in the future \(it is now 2026-11-02T12:00:00Z\)"
    ):
        work_period(entry(1, now + timedelta(minutes=6), hours=1), now=now)
    # Against the clock, before any request.
    app = sandbox_app()
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    with pytest.raises(Refused, match="is in the future"):
        await create_time_entry(sandbox_session(app), entry(ticket_in(app, time_allowed=True)["id"], soon, hours=1))
    assert app.state.request_log == []


def test_billable_option_is_taken_in_any_case():
    from mcp_server_connectwise.services.time_entries import TimeEntryRequest

    request = TimeEntryRequest.model_validate(
        {"ticket_id": 1, "start": "2026-11-02T09:00:00Z", "hours": 1, "billable_option": "donotbill"}
    )
    assert request.billable_option == "DoNotBill"
    schema = TimeEntryRequest.model_json_schema()["properties"]["billable_option"]
    assert schema["anyOf"][0]["enum"] == ["Billable", "DoNotBill", "NoCharge", "NoDefault"]


async def test_minutes_log_the_same_time_as_hours_would():
    app = sandbox_app()
    ticket = ticket_in(app, time_allowed=True)
    created = await create_time_entry(sandbox_session(app), entry(ticket["id"], START, minutes=20))
    post = app.state.request_log[-1]
    assert (post["json"]["timeStart"], post["json"]["timeEnd"]) == ("2026-11-02T08:00:00Z", "2026-11-02T08:20:00Z")
    assert created.end - created.start == timedelta(minutes=20)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "Give one of end, hours or minutes."),
        ({"hours": 1, "minutes": 60}, "Give one of end, hours or minutes (not hours and minutes)."),
        (
            {"end": START + timedelta(hours=1), "minutes": 60},
            "Give one of end, hours or minutes (not end and minutes).",
        ),
    ],
)
async def test_one_of_end_hours_and_minutes_is_needed_before_anything_is_sent(given, message):
    app = sandbox_app()
    with pytest.raises(Refused) as refused:
        await create_time_entry(sandbox_session(app), entry(1001, START, **given))
    assert str(refused.value) == message and app.state.request_log == []
