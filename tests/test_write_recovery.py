"""A POST whose answer is lost is looked for before it is sent again: found, re-sent once, or reported unknown.

Over the in-process sandbox, with the fault each request gets scripted in order.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timezone

import httpx2
import pytest
from test_server_harness import CLIENT_ID, SANDBOX, sandbox_app, tenant_config

from mcp_server_connectwise.connectwise import ApiCredentials, ClientSettings, ConnectWiseClient
from mcp_server_connectwise.services import write_recovery
from mcp_server_connectwise.services.catalog import Catalog
from mcp_server_connectwise.services.errors import Failed, OutcomeUnknown
from mcp_server_connectwise.services.notes import add_ticket_note
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.time_entries import TimeEntryRequest, create_time_entry

TICKET = 1001


@pytest.fixture(autouse=True)
def no_settle_wait(monkeypatch):
    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 0.0)


async def _no_wait(_seconds: float) -> None:
    pass


def session_over(app) -> TenantSession:
    """A session on `app` whose client retries without waiting."""
    tenant = tenant_config("acme")
    client = ConnectWiseClient(
        ClientSettings(company_id=SANDBOX.company, client_id=CLIENT_ID, base_url=tenant.base_url),
        ApiCredentials(SANDBOX.public_key, SANDBOX.private_key),
        transport=httpx2.ASGITransport(app=app),
        sleep=_no_wait,
    )
    return TenantSession(tenant, client, Catalog(client))


def script_faults(app, **modes_by_method: list[str | None]) -> None:
    """The next requests of each method get these faults, one each in order (None: no fault); then none."""
    queues = {method.upper(): deque(modes) for method, modes in modes_by_method.items()}

    def pick() -> str | None:
        queue = queues.get(app.state.request_log[-1]["method"])  # the gate logs a request before picking its fault
        return queue.popleft() if queue else None

    app.state.faults.pick = pick


def requests(app) -> list[str]:
    return [f"{entry['method']} {entry['path']}" for entry in app.state.request_log]


def notes_saying(app, text: str) -> list[dict]:
    return [note for note in app.state.store["notes"].values() if note["text"] == text]


NOTES = f"/service/tickets/{TICKET}/notes"


async def test_a_note_saved_before_its_answer_was_lost_is_found_and_not_sent_again():
    app = sandbox_app()
    script_faults(app, post=["drop_after_commit"])
    added = await add_ticket_note(session_over(app), TICKET, "Rebooted the router.")
    [note] = notes_saying(app, "Rebooted the router.")
    assert added.note_id == note["id"]
    assert requests(app) == [f"POST {NOTES}", f"GET {NOTES}"]
    assert app.state.request_log[1]["query"]["orderBy"] == "id desc"


@pytest.mark.parametrize("fault", ["drop_before", "error_500", "error_503"])
async def test_a_note_that_did_not_land_is_sent_once_more(fault):
    app = sandbox_app()
    script_faults(app, post=[fault])
    added = await add_ticket_note(session_over(app), TICKET, "Replaced the switch.", "discussion")
    [note] = notes_saying(app, "Replaced the switch.")
    assert added.note_id == note["id"] and note["detailDescriptionFlag"] is True
    assert requests(app) == [f"POST {NOTES}", f"GET {NOTES}", f"POST {NOTES}"]


async def test_when_the_second_answer_is_lost_too_it_looks_again():
    app = sandbox_app()
    script_faults(app, post=["drop_before", "drop_after_commit"])
    added = await add_ticket_note(session_over(app), TICKET, "Cleared the print queue.")
    [note] = notes_saying(app, "Cleared the print queue.")
    assert added.note_id == note["id"]
    assert requests(app) == [f"POST {NOTES}", f"GET {NOTES}"] * 2


async def test_two_sends_that_both_did_not_land_fail_and_nothing_is_written():
    app = sandbox_app()
    script_faults(app, post=["drop_before", "error_503"])
    with pytest.raises(Failed) as failed:
        await add_ticket_note(session_over(app), TICKET, "Updated the firmware.")
    assert failed.value.outcome == "error"
    assert "not saved on ticket 1001" in str(failed.value) and "nothing was written" in str(failed.value)
    assert notes_saying(app, "Updated the firmware.") == []
    assert requests(app).count(f"POST {NOTES}") == 2


async def test_when_looking_fails_the_outcome_is_unknown_and_nothing_is_resent():
    app = sandbox_app()
    script_faults(app, post=["drop_after_commit"], get=["error_503"] * 4)  # a read is tried four times
    with pytest.raises(OutcomeUnknown) as unknown:
        await add_ticket_note(session_over(app), TICKET, "Escalated to networking.")
    sentence = str(unknown.value)
    assert unknown.value.outcome == "unknown"
    assert "may or may not have been written" in sentence and "ticket 1001" in sentence
    assert "check the ticket's notes with get_ticket_details" in sentence
    assert requests(app).count(f"POST {NOTES}") == 1
    assert len(notes_saying(app, "Escalated to networking.")) == 1  # it did land: hence "unknown", not "failed"


async def test_an_identical_note_an_earlier_call_wrote_is_not_taken_for_the_lost_one():
    app = sandbox_app()
    session = session_over(app)
    first = await add_ticket_note(session, TICKET, "Called the customer, no answer.")
    script_faults(app, post=["drop_before"])
    second = await add_ticket_note(session, TICKET, "Called the customer, no answer.")
    assert {note["id"] for note in notes_saying(app, "Called the customer, no answer.")} == {first.note_id, second.note_id}
    assert first.note_id != second.note_id


async def test_an_identical_note_from_before_the_time_window_is_not_taken_for_the_lost_one():
    app = sandbox_app()
    old = next(note for note in app.state.store["notes"].values()  # seeded months ago
               if note["ticketId"] == TICKET and note["detailDescriptionFlag"] and not note["issueFlag"])
    same_before = len(notes_saying(app, old["text"]))
    script_faults(app, post=["drop_before"])
    added = await add_ticket_note(session_over(app), TICKET, old["text"], "discussion")
    assert added.note_id != old["id"]
    assert len(notes_saying(app, old["text"])) == same_before + 1


async def test_the_same_words_in_another_section_are_not_the_lost_note():
    app = sandbox_app()
    session = session_over(app)
    internal = await add_ticket_note(session, TICKET, "Waiting on the vendor.", "internal")
    script_faults(app, post=["drop_before"])
    discussion = await add_ticket_note(session, TICKET, "Waiting on the vendor.", "discussion")
    assert discussion.note_id != internal.note_id
    assert app.state.store["notes"][discussion.note_id]["detailDescriptionFlag"] is True


def ticket_allowing_time(app) -> int:
    store = app.state.store
    return next(t["id"] for t in store["tickets"].values() if not store["statuses"][t["status"]["id"]]["timeEntryNotAllowed"])


def entries_saying(app, text: str) -> list[dict]:
    return [entry for entry in app.state.store["timeEntries"].values() if entry.get("notes") == text]


def time_request(app, notes: str) -> TimeEntryRequest:
    return TimeEntryRequest(
        ticket_id=ticket_allowing_time(app), start=datetime(2026, 11, 2, 9, tzinfo=timezone.utc), hours=1.5, notes=notes
    )


async def test_a_time_entry_saved_before_its_answer_was_lost_is_found_and_not_sent_again():
    app = sandbox_app()
    session = session_over(app)
    request = time_request(app, "Replaced the toner.")
    script_faults(app, post=["drop_after_commit"])
    created = await create_time_entry(session, request)
    [entry] = entries_saying(app, "Replaced the toner.")
    assert created.time_entry_id == entry["id"] and created.hours == 1.5
    assert requests(app)[-2:] == ["POST /time/entries", "GET /time/entries"]
    conditions = app.state.request_log[-1]["query"]["conditions"]
    assert f"chargeToId = {request.ticket_id}" in conditions and "timeStart = [2026-11-02T09:00:00Z]" in conditions
    assert "member/id = " in conditions


async def test_a_time_entry_that_did_not_land_is_sent_once_more():
    app = sandbox_app()
    script_faults(app, post=["drop_before"])
    created = await create_time_entry(session_over(app), time_request(app, "Configured the VPN."))
    [entry] = entries_saying(app, "Configured the VPN.")
    assert created.time_entry_id == entry["id"]
    assert requests(app)[-3:] == ["POST /time/entries", "GET /time/entries", "POST /time/entries"]


async def test_an_identical_time_entry_an_earlier_call_wrote_is_not_taken_for_the_lost_one():
    app = sandbox_app()
    session = session_over(app)
    request = time_request(app, "On site.")
    first = await create_time_entry(session, request)
    second_requests_from = len(app.state.request_log)
    script_faults(app, post=["drop_before"])
    second = await create_time_entry(session, request)
    assert first.time_entry_id != second.time_entry_id
    assert len(entries_saying(app, "On site.")) == 2
    assert requests(app)[second_requests_from:] == [
        f"GET /service/tickets/{request.ticket_id}", "POST /time/entries", "GET /time/entries", "POST /time/entries"]
