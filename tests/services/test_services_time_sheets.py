"""list_time_entries and update_time_entry as services over the sandbox: the time sheet against the store,
the bounded walk, and a correction that sends exactly what changes, or nothing, and ends truthfully."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from mcp_server_connectwise.connectwise import ValidationError, retry
from mcp_server_connectwise.connectwise.retry import RetryPolicy
from mcp_server_connectwise.services import write_recovery
from mcp_server_connectwise.services.errors import Failed, Look, OutcomeUnknown, Refused
from mcp_server_connectwise.services.time_sheets import MAX_ENTRIES, list_time_entries, update_time_entry

from support.faults import Rewriting, recorded_settle_waits, script_faults
from support.harness import sandbox_app, sandbox_session
from support.requests import entry_changes, time_sheet

WEEK = (date(2026, 10, 26), date(2026, 11, 1))  # the seed's last full week (SEED_NOW is Monday 2026-11-02)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(retry, "backoff", lambda *args, **kwargs: 0.0)


def requests(app) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in app.state.request_log]


def sent_writes(app) -> list[dict]:
    return [r for r in app.state.request_log if r["method"] != "GET"]


def time_allowed(app, ticket_id: int) -> bool:
    store = app.state.store
    return not store["statuses"][store["tickets"][ticket_id]["status"]["id"]]["timeEntryNotAllowed"]


def seeded_entry(app, *, status: str = "Open", ticket_takes_time: bool = True) -> dict:
    return next(
        e
        for e in app.state.store["timeEntries"].values()
        if e["status"] == status and time_allowed(app, e["chargeToId"]) is ticket_takes_time
    )


# --- list_time_entries ---------------------------------------------------------------------------------------


async def test_a_member_no_longer_active_still_has_a_time_sheet_to_review():
    app = sandbox_app()
    store = app.state.store
    member = next(m for m in store["members"].values() if m["inactiveFlag"])
    entry = next(
        e for e in store["timeEntries"].values() if WEEK[0].isoformat() <= e["timeStart"][:10] <= WEEK[1].isoformat()
    )
    entry["member"] = {"id": member["id"], "identifier": member["identifier"], "name": "Kai Fischer"}  # before leaving
    sheet = await list_time_entries(
        sandbox_session(app), time_sheet(member=member["identifier"], date_from=WEEK[0], date_to=WEEK[1])
    )
    assert [e.id for e in sheet.entries] == [entry["id"]] and sheet.member == member["identifier"]


async def test_a_members_week_has_its_entries_hours_per_day_and_billable_totals():
    app = sandbox_app()
    sheet = await list_time_entries(
        sandbox_session(app), time_sheet(member="Anna Kowalski", date_from=WEEK[0], date_to=WEEK[1])
    )
    # The same figures, from the store.
    stored = sorted(
        (
            e
            for e in app.state.store["timeEntries"].values()
            if e["member"]["identifier"] == "akowalski" and "2026-10-26" <= e["timeStart"][:10] <= "2026-11-01"
        ),
        key=lambda e: (e["timeStart"], e["id"]),
    )
    assert len(stored) >= 3
    days = {f"2026-10-{day}": 0.0 for day in range(26, 32)} | {"2026-11-01": 0.0}
    for e in stored:
        days[e["timeStart"][:10]] += e["actualHours"]
    billable = sum(e["actualHours"] for e in stored if e["billableOption"] == "Billable")
    assert sheet.member == "akowalski" and (sheet.date_from, sheet.date_to) == WEEK
    assert [e.id for e in sheet.entries] == [e["id"] for e in stored]
    assert sheet.hours_per_day == {day: round(hours, 2) for day, hours in days.items()}
    assert sheet.total_hours == round(sum(e["actualHours"] for e in stored), 2)
    assert sheet.billable_hours == round(billable, 2)
    assert sheet.non_billable_hours == round(sheet.total_hours - billable, 2)
    first, entry = sheet.entries[0], stored[0]
    assert (first.ticket_id, first.member, first.status, first.work_type) == (
        entry["chargeToId"],
        "akowalski",
        entry["status"],
        entry["workType"]["name"],
    )
    assert sheet.more is None
    # The member list (cold cache), then one page of only the fields shown.
    assert requests(app) == [("GET", "/system/members"), ("GET", "/time/entries")]
    query = app.state.request_log[-1]["query"]
    assert query["conditions"] == (
        "member/id = 4 and timeStart >= [2026-10-26T00:00:00Z] and timeStart < [2026-11-02T00:00:00Z]"
    )
    assert query["fields"].split(",")[:3] == ["id", "chargeToId", "chargeToType"]


async def test_a_tickets_entries_are_all_its_time_whoever_logged_it():
    app = sandbox_app()
    store = app.state.store
    ticket_id = max(
        {e["chargeToId"] for e in store["timeEntries"].values()},
        key=lambda t: len(store.children("timeEntries", t)),
    )
    stored = store.children("timeEntries", ticket_id)
    sheet = await list_time_entries(sandbox_session(app), time_sheet(ticket_id=ticket_id))
    assert [e.id for e in sheet.entries] == sorted(e["id"] for e in stored)
    assert {e.ticket_id for e in sheet.entries} == {ticket_id} and sheet.member is None
    assert sheet.date_from is None and sum(sheet.hours_per_day.values()) == sheet.total_hours
    assert requests(app) == [("GET", "/time/entries")]  # no member to resolve
    assert app.state.request_log[0]["query"]["conditions"] == (
        f'(chargeToType = "ServiceTicket" or chargeToType = "ProjectTicket") and chargeToId = {ticket_id}'
    )


async def test_without_member_or_dates_it_is_the_tenants_member_this_week():
    app = sandbox_app()
    sheet = await list_time_entries(sandbox_session(app), time_sheet(), today=date(2026, 10, 29))
    assert sheet.member == "jsmith" and (sheet.date_from, sheet.date_to) == WEEK
    assert list(sheet.hours_per_day) == [(WEEK[0] + timedelta(days=n)).isoformat() for n in range(7)]


async def test_without_a_configured_member_it_needs_member_or_ticket_and_sends_nothing():
    app = sandbox_app()
    with pytest.raises(Refused, match="Tenant acme has no configured member to list time for; give member"):
        await list_time_entries(sandbox_session(app, member=None), time_sheet())
    assert app.state.request_log == []


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ({"date_from": date(2026, 11, 1), "date_to": date(2026, 10, 26)}, r"date_to \(2026-10-26\) is before"),
        ({"date_from": date(2026, 10, 1), "date_to": date(2026, 11, 1)}, "at most 31 days and .* is 32"),
        ({"date_from": date(1752, 12, 31)}, "date_from 1752-12-31 is outside the dates ConnectWise can store"),
    ],
)
async def test_a_range_no_time_sheet_has_is_refused_before_any_request(days, message):
    app = sandbox_app()
    with pytest.raises(Refused, match=message):
        await list_time_entries(sandbox_session(app), time_sheet(member="jsmith", **days))
    assert app.state.request_log == []


async def test_one_day_alone_is_the_week_from_or_to_it_even_at_the_end_of_the_calendar():
    app = sandbox_app()
    session = sandbox_session(app)
    to = await list_time_entries(session, time_sheet(member="jsmith", date_to=WEEK[1]))
    assert (to.date_from, to.date_to) == WEEK
    last = await list_time_entries(session, time_sheet(member="jsmith", date_from=date(9999, 12, 29)))
    assert (last.date_from, last.date_to) == (date(9999, 12, 29), date(9999, 12, 31))
    assert app.state.request_log[-1]["query"]["conditions"].endswith("timeStart <= [9999-12-31T23:59:59Z]")


async def test_the_walk_stops_at_its_cap_and_says_more_match():
    app = sandbox_app()
    writer = app.state.writer
    ticket_id = next(t for t in app.state.store["tickets"] if time_allowed(app, t))
    start = datetime(2026, 10, 5, 8, tzinfo=timezone.utc)
    for n in range(MAX_ENTRIES + 5):
        moment = start + timedelta(minutes=15 * n)
        writer.create(
            "timeEntries",
            {
                "chargeToId": ticket_id,
                "member": {"identifier": "mgarcia"},
                "timeStart": moment.isoformat(),
                "timeEnd": (moment + timedelta(minutes=15)).isoformat(),
            },
            "mgarcia",
        )
    sheet = await list_time_entries(sandbox_session(app), time_sheet(member="mgarcia", date_from=date(2026, 10, 5)))
    assert sheet.more is True and len(sheet.entries) == MAX_ENTRIES
    assert sheet.total_hours == MAX_ENTRIES * 0.25
    assert requests(app).count(("GET", "/time/entries")) == 2  # two pages of 50, then it stops


# --- update_time_entry ---------------------------------------------------------------------------------------


async def test_an_open_entry_changes_exactly_the_fields_asked():
    app = sandbox_app()
    entry = seeded_entry(app)
    before = dict(entry)
    new_end = datetime.fromisoformat(entry["timeStart"]) + timedelta(hours=1, minutes=30)
    option = "DoNotBill" if entry["billableOption"] == "NoCharge" else "NoCharge"
    updated = await update_time_entry(
        sandbox_session(app),
        entry_changes(entry["id"], end=new_end, notes="Replaced\u200b the dock.", billable_option=option),
    )
    [patch] = sent_writes(app)
    assert (patch["method"], patch["path"]) == ("PATCH", f"/time/entries/{entry['id']}")
    assert patch["json"] == [
        {"op": "replace", "path": "timeEnd", "value": new_end.strftime("%Y-%m-%dT%H:%M:%SZ")},
        {"op": "replace", "path": "notes", "value": "Replaced the dock."},
        {"op": "replace", "path": "billableOption", "value": option},
    ]
    after = app.state.store["timeEntries"][entry["id"]]
    changed = {key for key in after if after[key] != before.get(key)}
    assert changed == {"timeEnd", "notes", "billableOption", "actualHours", "_info"}
    assert after["actualHours"] == 1.5 and after["timeStart"] == before["timeStart"]
    assert updated.patched and updated.hours == 1.5
    assert {c.field: (c.before, c.after) for c in updated.changes} == {
        "timeEnd": (before["timeEnd"], after["timeEnd"]),
        "notes": (before["notes"], "Replaced the dock."),
        "billableOption": (before["billableOption"], option),
        "actualHours": (before["actualHours"], 1.5),
    }


async def test_every_patch_carries_the_billable_option_connectwise_requires():
    app = sandbox_app()
    entry = seeded_entry(app, status="Rejected", ticket_takes_time=False)  # notes alone: no time is added
    await update_time_entry(sandbox_session(app), entry_changes(entry["id"], notes="Called the user back."))
    [patch] = sent_writes(app)
    assert patch["json"] == [
        {"op": "replace", "path": "notes", "value": "Called the user back."},
        {"op": "replace", "path": "billableOption", "value": entry["billableOption"]},
    ]


async def test_a_new_start_keeps_the_end_and_hours_follow_from_the_start():
    app = sandbox_app()
    entry = seeded_entry(app)
    start = datetime.fromisoformat(entry["timeStart"])
    session = sandbox_session(app)
    earlier = await update_time_entry(session, entry_changes(entry["id"], start=start - timedelta(minutes=30)))
    stored = app.state.store["timeEntries"][entry["id"]]
    assert stored["timeEnd"] == entry["timeEnd"] and earlier.hours == entry["actualHours"] + 0.5
    await update_time_entry(session, entry_changes(entry["id"], hours=2))
    stored = app.state.store["timeEntries"][entry["id"]]
    assert stored["actualHours"] == 2.0 and stored["timeStart"] == (start - timedelta(minutes=30)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


@pytest.mark.parametrize("status", ["PendingApproval", "ApprovedByTierOne", "ReadyToBill", "Billed"])
async def test_an_entry_in_approval_or_billed_is_refused_with_its_status_and_nothing_is_sent(status):
    app = sandbox_app()
    entry = next(e for e in app.state.store["timeEntries"].values() if e["status"] == status)
    with pytest.raises(Refused) as refused:
        await update_time_entry(sandbox_session(app), entry_changes(entry["id"], notes="Corrected."))
    why = "billed or written off" if status == "Billed" else "in approval"
    assert str(refused.value).startswith(f"Time entry {entry['id']} is {status}: it is {why}")
    assert str(refused.value).endswith(
        "It was not changed; only Open, Rejected, ErrorsCorrected entries can be edited."
    )
    assert refused.value.look is Look.LIST_TIME
    assert requests(app) == [("GET", f"/time/entries/{entry['id']}")]
    assert app.state.store["timeEntries"][entry["id"]] == entry


async def test_asking_for_the_values_an_entry_has_sends_nothing_even_when_billed():
    app = sandbox_app()
    entry = next(e for e in app.state.store["timeEntries"].values() if e["status"] == "Billed")
    updated = await update_time_entry(
        sandbox_session(app), entry_changes(entry["id"], notes=entry["notes"], billable_option=entry["billableOption"])
    )
    assert not updated.patched and updated.changes == [] and sent_writes(app) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hours": 24.5}, "at most 24"),
        ({"end_offset": timedelta(hours=24, minutes=1)}, "at most 24 hours"),
        ({"end_offset": -timedelta(minutes=10)}, "must be after start"),
        ({"start_offset": timedelta(hours=3)}, "must be after start"),  # past the entry's end, which stays
        ({"future": True}, "is in the future"),
        ({"end_offset": timedelta(hours=1), "hours": 1}, "end or hours, not both"),
        ({}, "Nothing to change"),
        ({"notes": " \u200b "}, "notes is empty"),
        ({"notes": "a\x00b"}, "control character U\\+0000"),
        ({"work_type": "Juggling"}, "no work type 'Juggling'"),
    ],
)
async def test_a_correction_create_time_entry_would_refuse_is_refused_and_nothing_is_sent(fields, message):
    app = sandbox_app()
    entry = seeded_entry(app)
    start = datetime.fromisoformat(entry["timeStart"])
    changes = {key: value for key, value in fields.items() if key in ("hours", "notes", "work_type")}
    if "end_offset" in fields:
        changes["end"] = start + fields["end_offset"]
    if "start_offset" in fields:
        changes["start"] = start + fields["start_offset"]
    if fields.get("future"):
        changes["start"], changes["hours"] = datetime.now(timezone.utc) + timedelta(hours=1), 1.0
    with pytest.raises(Refused, match=message):
        await update_time_entry(sandbox_session(app), entry_changes(entry["id"], **changes))
    assert sent_writes(app) == []
    assert app.state.store["timeEntries"][entry["id"]] == entry


async def test_new_times_on_a_ticket_whose_status_forbids_time_are_refused_but_notes_are_not():
    app = sandbox_app()
    entry = seeded_entry(app, ticket_takes_time=False)
    session = sandbox_session(app)
    with pytest.raises(Refused, match=f"Ticket {entry['chargeToId']} is in status .* does not allow time entries"):
        await update_time_entry(session, entry_changes(entry["id"], hours=0.75))
    assert sent_writes(app) == []
    await update_time_entry(session, entry_changes(entry["id"], notes="Closed out with the user."))
    assert app.state.store["timeEntries"][entry["id"]]["notes"] == "Closed out with the user."


async def test_an_unknown_entry_is_refused_naming_it():
    app = sandbox_app()
    with pytest.raises(Refused, match="There is no time entry 99999 in tenant acme; check the id.") as refused:
        await update_time_entry(sandbox_session(app), entry_changes(99999, notes="x"))
    assert refused.value.look is Look.LIST_TIME and sent_writes(app) == []


async def test_an_entry_changed_to_a_status_past_editing_is_refused_by_the_sandbox_too():
    """Between our read and our PATCH the entry was submitted: ConnectWise (the sandbox) refuses it."""
    app = sandbox_app()
    entry = seeded_entry(app)

    class SubmittedMeanwhile(Rewriting):
        def request_json(self, request, body):
            if request.method == "PATCH":
                store = app.state.store["timeEntries"]
                store[entry["id"]] = {**store[entry["id"]], "status": "PendingApproval"}
            return body

    with pytest.raises(ValidationError) as refused:
        await update_time_entry(
            sandbox_session(app, transport=SubmittedMeanwhile(app)), entry_changes(entry["id"], notes="Late fix.")
        )
    assert refused.value.status == 400 and [(e.resource, e.field) for e in refused.value.field_errors] == [
        ("timeEntry", "status")
    ]
    assert app.state.store["timeEntries"][entry["id"]]["notes"] == entry["notes"]


# --- a lost answer ---------------------------------------------------------------------------------------------


async def test_one_lost_answer_is_resent_by_the_client_and_the_change_lands_once():
    app = sandbox_app()
    entry = seeded_entry(app)
    script_faults(app, patch=["drop_after_commit"])
    updated = await update_time_entry(sandbox_session(app), entry_changes(entry["id"], notes="Swapped the PSU."))
    assert updated.patched and [c.field for c in updated.changes] == ["notes"]
    assert [r["method"] for r in sent_writes(app)] == ["PATCH", "PATCH"]  # idempotent: safe to send again
    assert app.state.store["timeEntries"][entry["id"]]["notes"] == "Swapped the PSU."


async def test_answers_lost_every_time_are_settled_by_reading_the_entry_back(monkeypatch):
    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 0.25)
    waits = recorded_settle_waits(monkeypatch)
    app = sandbox_app()
    entry = seeded_entry(app)
    script_faults(app, patch=["drop_after_commit"] * RetryPolicy().max_attempts)
    updated = await update_time_entry(sandbox_session(app), entry_changes(entry["id"], notes="Swapped the PSU."))
    assert updated.patched and updated.changes[0].after == "Swapped the PSU."
    assert waits == [0.25] and requests(app)[-1] == ("GET", f"/time/entries/{entry['id']}")


async def test_a_change_still_not_there_after_lost_answers_is_an_unknown_outcome(monkeypatch):
    app = sandbox_app()
    entry = seeded_entry(app)
    script_faults(app, patch=["drop_before"] * RetryPolicy().max_attempts)
    with pytest.raises(OutcomeUnknown) as unknown:
        await update_time_entry(sandbox_session(app), entry_changes(entry["id"], notes="Swapped the PSU."))
    assert str(unknown.value) == (
        f"It is unknown whether time entry {entry['id']} (tenant acme) was changed: ConnectWise gave no answer to "
        "the change, and the entry read back still shows the old notes; ConnectWise may still apply it. Check it "
        "before sending the change again (a retry of this same call reads the entry first and sends only what is "
        "still different)."
    )
    assert unknown.value.look is Look.LIST_TIME
    assert app.state.store["timeEntries"][entry["id"]]["notes"] == entry["notes"]


async def test_a_lost_answer_whose_read_back_fails_too_is_an_unknown_outcome():
    app = sandbox_app()
    entry = seeded_entry(app)
    script_faults(app, get=[None, "error_503", "error_503", "error_503", "error_503"], patch=["drop_before"] * 4)
    with pytest.raises(OutcomeUnknown, match=r"reading it back failed too \(HTTP 503\)"):
        await update_time_entry(sandbox_session(app), entry_changes(entry["id"], notes="Swapped the PSU."))


async def test_a_200_that_does_not_show_the_change_is_reported_not_applied():
    app = sandbox_app()
    entry = seeded_entry(app)

    class NotesAsSubPath(Rewriting):  # a sub-path: ConnectWise answers 200 and changes nothing
        def request_json(self, request, body):
            if request.method != "PATCH":
                return body
            return [{**op, "path": "notes/text"} if op["path"] == "notes" else op for op in body]

    with pytest.raises(Failed) as failed:
        await update_time_entry(
            sandbox_session(app, transport=NotesAsSubPath(app)), entry_changes(entry["id"], notes="Swapped the PSU.")
        )
    assert str(failed.value) == (
        f"The change to time entry {entry['id']} (tenant acme) was not applied as asked: ConnectWise accepted it, "
        "but its answer shows the old notes. Read the entry before trying again."
    )
