"""A POST whose answer is lost is looked for before it is sent again: found, re-sent once, or reported unknown.

Over the in-process sandbox, with the fault each request gets scripted in order, or behind a transport that
makes the sandbox answer as another ConnectWise might (partial responses, times kept to the minute, a late
commit).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx2
import pytest

from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.services import write_recovery
from mcp_server_connectwise.services.catalog import Catalog
from mcp_server_connectwise.services.errors import Failed, Look, OutcomeUnknown
from mcp_server_connectwise.services.notes import add_ticket_note
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.time_entries import TimeEntryRequest, create_time_entry

from support.faults import Rewriting, recorded_settle_waits, script_faults
from support.harness import sandbox_app, sandbox_client
from support.requests import entry as entry_of
from support.requests import note as note_of

TICKET = 1001


@pytest.fixture(autouse=True)
def no_settle_wait(monkeypatch):
    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(write_recovery, "RECHECK_SECONDS", 0.0)


async def _no_wait(_seconds: float) -> None:
    pass


def session_over(app, transport: httpx2.AsyncBaseTransport | None = None) -> TenantSession:
    """A session on `app` (or on `transport` in front of it) whose client retries without waiting."""
    sandbox = sandbox_tenant("acme", app)
    client = sandbox_client(sandbox, transport, sleep=_no_wait)
    return TenantSession(sandbox.config, client, Catalog(client))


def requests(app) -> list[str]:
    return [f"{entry['method']} {entry['path']}" for entry in app.state.request_log]


def notes_saying(app, text: str) -> list[dict]:
    return [note for note in app.state.store["notes"].values() if note["text"] == text]


NOTES = f"/service/tickets/{TICKET}/notes"


async def test_a_note_saved_before_its_answer_was_lost_is_found_and_not_sent_again():
    app = sandbox_app()
    script_faults(app, post=["drop_after_commit"])
    added = await add_ticket_note(session_over(app), note_of(TICKET, "Rebooted the router."))
    [note] = notes_saying(app, "Rebooted the router.")
    assert added.note_id == note["id"]
    assert requests(app) == [f"POST {NOTES}", f"GET {NOTES}"]
    assert app.state.request_log[1]["query"]["orderBy"] == "id desc"


@pytest.mark.parametrize("fault", ["error_500", "error_503"])
async def test_a_note_refused_with_a_server_error_is_looked_for_once_then_sent_once_more(fault):
    app = sandbox_app()
    script_faults(app, post=[fault])
    added = await add_ticket_note(session_over(app), note_of(TICKET, "Replaced the switch.", "discussion"))
    [note] = notes_saying(app, "Replaced the switch.")
    assert added.note_id == note["id"] and note["detailDescriptionFlag"] is True
    assert requests(app) == [f"POST {NOTES}", f"GET {NOTES}", f"POST {NOTES}"]


async def test_a_note_sent_without_an_answer_is_looked_for_twice_before_it_is_sent_once_more():
    app = sandbox_app()
    script_faults(app, post=["drop_before"])
    added = await add_ticket_note(session_over(app), note_of(TICKET, "Replaced the switch.", "discussion"))
    [note] = notes_saying(app, "Replaced the switch.")
    assert added.note_id == note["id"]
    assert requests(app) == [f"POST {NOTES}", f"GET {NOTES}", f"GET {NOTES}", f"POST {NOTES}"]


class CommitsLate(httpx2.AsyncBaseTransport):
    """Loses the answer to the first POST, and lets it reach the sandbox only once the request after it has
    been answered: a write ConnectWise is still committing when it is first looked for."""

    def __init__(self, app) -> None:
        self.inner = httpx2.ASGITransport(app=app)
        self.held: httpx2.Request | None = None
        self.posts_sent = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            self.posts_sent += 1
            if self.posts_sent == 1:
                await request.aread()
                self.held = request
                raise httpx2.ReadTimeout("no answer (test)", request=request)
        response = await self.inner.handle_async_request(request)
        if self.held is not None:
            held, self.held = self.held, None
            await (await self.inner.handle_async_request(held)).aread()
        return response


async def test_a_note_still_committing_at_the_first_look_is_found_at_the_second_and_not_sent_again(monkeypatch):
    monkeypatch.setattr(write_recovery, "RECHECK_SECONDS", 0.01)
    app = sandbox_app()
    transport = CommitsLate(app)
    added = await add_ticket_note(session_over(app, transport), note_of(TICKET, "Restarted the spooler."))
    [note] = notes_saying(app, "Restarted the spooler.")
    assert added.note_id == note["id"] and transport.posts_sent == 1
    assert requests(app) == [f"GET {NOTES}", f"POST {NOTES}", f"GET {NOTES}"]  # looked, it landed, looked again


async def test_the_waits_before_each_look_are_the_module_constants(monkeypatch):
    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 0.25)
    monkeypatch.setattr(write_recovery, "RECHECK_SECONDS", 0.5)
    waits = recorded_settle_waits(monkeypatch)
    app = sandbox_app()
    script_faults(app, post=["drop_before", "error_500"])
    with pytest.raises(Failed):
        await add_ticket_note(session_over(app), note_of(TICKET, "Swapped the PSU."))
    assert waits == [0.25, 0.5, 0.25]  # sent without an answer: two looks; a server error: one


async def test_when_the_second_answer_is_lost_too_it_looks_again():
    app = sandbox_app()
    script_faults(app, post=["drop_before", "drop_after_commit"])
    added = await add_ticket_note(session_over(app), note_of(TICKET, "Cleared the print queue."))
    [note] = notes_saying(app, "Cleared the print queue.")
    assert added.note_id == note["id"]
    assert requests(app) == [f"POST {NOTES}", f"GET {NOTES}", f"GET {NOTES}", f"POST {NOTES}", f"GET {NOTES}"]


async def test_two_sends_that_both_did_not_land_fail_saying_what_was_seen_and_nothing_is_written():
    app = sandbox_app()
    script_faults(app, post=["drop_before", "error_503"])
    with pytest.raises(Failed) as failed:
        await add_ticket_note(session_over(app), note_of(TICKET, "Updated the firmware."))
    assert failed.value.outcome == "error"
    assert str(failed.value) == (
        "The note was not saved on ticket 1001 (tenant acme): both attempts failed (the connection broke or timed "
        "out after it was sent; then HTTP 503) and ConnectWise shows no such note after looking 3 times; nothing "
        "was written. Try again later."
    )
    assert notes_saying(app, "Updated the firmware.") == []
    assert requests(app).count(f"POST {NOTES}") == 2


class NeverSendsPosts(httpx2.AsyncBaseTransport):
    """The connection fails before any POST goes out; everything else reaches the sandbox."""

    def __init__(self, app) -> None:
        self.inner = httpx2.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            raise httpx2.ConnectError("connection refused (test)", request=request)
        return await self.inner.handle_async_request(request)


async def test_a_note_that_was_never_sent_is_not_looked_for():
    app = sandbox_app()
    with pytest.raises(Failed) as failed:
        await add_ticket_note(session_over(app, NeverSendsPosts(app)), note_of(TICKET, "Checked the UPS."))
    assert "neither request reached ConnectWise; nothing was written" in str(failed.value)
    assert requests(app) == []


class OmitsFalseFlags(Rewriting):
    """Lists records as a partial response may: without the flags that are false."""

    def response_json(self, request, body):
        if isinstance(body, list):
            return [{key: value for key, value in record.items() if value is not False} for record in body]
        return body


@pytest.mark.parametrize("note_type", ["internal", "discussion"])
async def test_a_lost_note_is_found_when_the_list_leaves_out_its_false_flags(note_type):
    app = sandbox_app()
    script_faults(app, post=["drop_after_commit"])
    added = await add_ticket_note(session_over(app, OmitsFalseFlags(app)), note_of(TICKET, "Flushed DNS.", note_type))
    [note] = notes_saying(app, "Flushed DNS.")
    assert added.note_id == note["id"]
    assert requests(app) == [f"POST {NOTES}", f"GET {NOTES}"]


async def test_the_ids_already_reported_are_kept_on_the_tenant_session():
    app = sandbox_app()
    session = session_over(app)
    added = await add_ticket_note(session, note_of(TICKET, "Closed the loop."))
    assert list(session.reported_ids["note"]) == [added.note_id]
    assert list(session_over(app).reported_ids) == []  # another session (another tenant) has its own


async def test_when_looking_fails_the_outcome_is_unknown_and_nothing_is_resent():
    app = sandbox_app()
    script_faults(app, post=["drop_after_commit"], get=["error_503"] * 4)  # a read is tried four times
    with pytest.raises(OutcomeUnknown) as unknown:
        await add_ticket_note(session_over(app), note_of(TICKET, "Escalated to networking."))
    sentence = str(unknown.value)
    assert unknown.value.outcome == "unknown"
    assert "may or may not have been written" in sentence and "ticket 1001" in sentence
    assert "check the ticket's notes" in sentence and unknown.value.look is Look.READ_TICKET
    assert requests(app).count(f"POST {NOTES}") == 1
    assert len(notes_saying(app, "Escalated to networking.")) == 1  # it did land: hence "unknown", not "failed"


async def test_an_identical_note_an_earlier_call_wrote_is_not_taken_for_the_lost_one():
    app = sandbox_app()
    session = session_over(app)
    first = await add_ticket_note(session, note_of(TICKET, "Called the customer, no answer."))
    script_faults(app, post=["drop_before"])
    second = await add_ticket_note(session, note_of(TICKET, "Called the customer, no answer."))
    assert {note["id"] for note in notes_saying(app, "Called the customer, no answer.")} == {
        first.note_id,
        second.note_id,
    }
    assert first.note_id != second.note_id


async def test_an_identical_note_from_before_the_time_window_is_not_taken_for_the_lost_one():
    app = sandbox_app()
    old = next(
        note
        for note in app.state.store["notes"].values()  # seeded months ago
        if note["ticketId"] == TICKET and note["detailDescriptionFlag"] and not note["issueFlag"]
    )
    same_before = len(notes_saying(app, old["text"]))
    script_faults(app, post=["drop_before"])
    added = await add_ticket_note(session_over(app), note_of(TICKET, old["text"], "discussion"))
    assert added.note_id != old["id"]
    assert len(notes_saying(app, old["text"])) == same_before + 1


async def test_the_same_words_in_another_section_are_not_the_lost_note():
    app = sandbox_app()
    session = session_over(app)
    internal = await add_ticket_note(session, note_of(TICKET, "Waiting on the vendor.", "internal"))
    script_faults(app, post=["drop_before"])
    discussion = await add_ticket_note(session, note_of(TICKET, "Waiting on the vendor.", "discussion"))
    assert discussion.note_id != internal.note_id
    assert app.state.store["notes"][discussion.note_id]["detailDescriptionFlag"] is True


def ticket_allowing_time(app) -> int:
    store = app.state.store
    return next(
        t["id"] for t in store["tickets"].values() if not store["statuses"][t["status"]["id"]]["timeEntryNotAllowed"]
    )


def entries_saying(app, text: str) -> list[dict]:
    return [entry for entry in app.state.store["timeEntries"].values() if entry.get("notes") == text]


def time_request(app, notes: str) -> TimeEntryRequest:
    return entry_of(
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
    assert f"chargeToId = {request.ticket_id}" in conditions
    assert "timeStart >= [2026-11-02T08:59:00Z]" in conditions and "timeStart <= [2026-11-02T09:01:00Z]" in conditions
    assert "member/id = " in conditions


async def test_a_time_entry_that_did_not_land_is_sent_once_more():
    app = sandbox_app()
    script_faults(app, post=["drop_before"])
    created = await create_time_entry(session_over(app), time_request(app, "Configured the VPN."))
    [entry] = entries_saying(app, "Configured the VPN.")
    assert created.time_entry_id == entry["id"]
    assert requests(app)[-4:] == ["POST /time/entries", "GET /time/entries", "GET /time/entries", "POST /time/entries"]


class StoresMinutes(Rewriting):
    """Keeps a time entry's start and end to the minute, as a ConnectWise may."""

    def request_json(self, request, body):
        if request.method == "POST" and request.url.path.endswith("/time/entries"):
            return {**body, **{key: body[key][:17] + "00Z" for key in ("timeStart", "timeEnd")}}
        return body


async def test_a_lost_time_entry_stored_to_the_minute_is_found_and_not_sent_again():
    app = sandbox_app()
    session = session_over(app, StoresMinutes(app))
    request = time_request(app, "Moved the desk phone.")
    request = entry_of(request.ticket_id, request.start + timedelta(seconds=40), hours=1, notes=request.notes)
    script_faults(app, post=["drop_after_commit"])
    created = await create_time_entry(session, request)
    [entry] = entries_saying(app, "Moved the desk phone.")
    assert entry["timeStart"] == "2026-11-02T09:00:00Z" and created.time_entry_id == entry["id"]
    assert requests(app).count("POST /time/entries") == 1


async def test_an_identical_time_entry_an_earlier_call_wrote_is_not_taken_for_the_lost_one():
    app = sandbox_app()
    session = session_over(app)
    request = time_request(app, "On site.")
    first = await create_time_entry(session, request)
    second_requests_from = len(app.state.request_log)
    script_faults(app, post=["drop_before"])
    # The same work logged again on purpose: without allow_duplicate it is refused as a duplicate.
    second = await create_time_entry(session, request.model_copy(update={"allow_duplicate": True}))
    assert first.time_entry_id != second.time_entry_id
    assert len(entries_saying(app, "On site.")) == 2
    assert requests(app)[second_requests_from:] == [
        f"GET /service/tickets/{request.ticket_id}",
        "POST /time/entries",
        "GET /time/entries",
        "GET /time/entries",
        "POST /time/entries",
    ]


class AnswersFirstPostWith(httpx2.AsyncBaseTransport):
    """The sandbox, except that the first POST (which it saves) is answered with its status and `content`."""

    def __init__(self, app, content: bytes) -> None:
        self.inner = httpx2.ASGITransport(app=app)
        self.content: bytes | None = content

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if request.method != "POST" or self.content is None:
            return response
        content, self.content = self.content, None
        return httpx2.Response(response.status_code, headers={"content-type": "application/json"}, content=content)


UNREADABLE_ANSWERS = [b"", b"<html>Created</html>", b"{}", b'{"id": null}', b'{"id": "7"}', b"[]", b"true"]


@pytest.mark.parametrize("content", UNREADABLE_ANSWERS)
async def test_a_note_answered_2xx_without_a_readable_record_is_found_and_not_sent_again(content):
    app = sandbox_app()
    added = await add_ticket_note(
        session_over(app, AnswersFirstPostWith(app, content)), note_of(TICKET, "Reseated the RAM.")
    )
    [note] = notes_saying(app, "Reseated the RAM.")
    assert added.note_id == note["id"]
    assert requests(app) == [f"POST {NOTES}", f"GET {NOTES}"]


@pytest.mark.parametrize("content", [b"", b"<html>Created</html>", b"{}"])
async def test_a_time_entry_answered_2xx_without_a_readable_record_is_found_and_not_sent_again(content):
    app = sandbox_app()
    request = time_request(app, "Cleaned the fans.")
    created = await create_time_entry(session_over(app, AnswersFirstPostWith(app, content)), request)
    [entry] = entries_saying(app, "Cleaned the fans.")
    assert created.time_entry_id == entry["id"]
    assert requests(app)[-2:] == ["POST /time/entries", "GET /time/entries"]


async def test_a_2xx_without_a_readable_record_that_cannot_be_found_is_unknown_and_not_sent_again():
    app = sandbox_app()

    class AnswersEmptyAndListsNothing(AnswersFirstPostWith):
        async def handle_async_request(self, request):
            if request.method == "GET":
                return httpx2.Response(200, json=[])
            return await super().handle_async_request(request)

    with pytest.raises(OutcomeUnknown) as unknown:
        await add_ticket_note(session_over(app, AnswersEmptyAndListsNothing(app, b"")), note_of(TICKET, "Ran chkdsk."))
    assert "check the ticket's notes before sending it again" in str(unknown.value)
    assert unknown.value.look is Look.READ_TICKET
    assert requests(app).count(f"POST {NOTES}") == 1
    assert len(notes_saying(app, "Ran chkdsk.")) == 1


async def test_the_wait_before_looking_for_a_2xx_without_a_record_is_the_settle_time(monkeypatch):
    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 0.25)
    waits = recorded_settle_waits(monkeypatch)
    app = sandbox_app()
    await add_ticket_note(session_over(app, AnswersFirstPostWith(app, b"")), note_of(TICKET, "Rebooted the NAS."))
    assert waits == [0.25]


async def test_an_unexpected_error_while_looking_is_an_unknown_outcome(caplog):
    app = sandbox_app()
    script_faults(app, post=["drop_after_commit"])
    session = session_over(app)

    async def broken_list(*_args, **_kwargs):
        raise RuntimeError("bug while looking (test)")
        yield  # pragma: no cover

    session.client.iterate = broken_list
    with pytest.raises(OutcomeUnknown) as unknown:
        await add_ticket_note(session, note_of(TICKET, "Replaced the fan."))
    assert "looking for it failed too (an internal error)" in str(unknown.value)
    assert "bug while looking (test)" in caplog.text
    assert requests(app).count(f"POST {NOTES}") == 1


class WorkTypeAsText(Rewriting):
    """Lists time entries with their work type as a bare name, as a partial response might."""

    def response_json(self, request, body):
        if request.method == "GET" and isinstance(body, list):
            return [{**record, "workType": "Remote"} if "workType" in record else record for record in body]
        return body


async def test_a_lost_time_entry_is_looked_for_when_the_list_shows_work_types_as_text():
    app = sandbox_app()
    session = session_over(app, WorkTypeAsText(app))
    work_type = next(iter(app.state.store["workTypes"].values()))["name"]

    def request(notes: str) -> TimeEntryRequest:
        return entry_of(
            ticket_id=ticket_allowing_time(app),
            start=datetime(2026, 11, 2, 9, tzinfo=timezone.utc),
            hours=1.0,
            notes=notes,
            work_type=work_type,
            allow_duplicate=True,  # the same entry twice, on purpose
        )

    earlier = await create_time_entry(session, request("Patched the server."))  # a candidate the look compares
    script_faults(app, post=["drop_before"])
    created = await create_time_entry(session, request("Patched the server."))
    assert created.time_entry_id != earlier.time_entry_id
    assert len(entries_saying(app, "Patched the server.")) == 2
