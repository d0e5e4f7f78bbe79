"""Ticket reads, as service functions against the sandbox (no MCP)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timezone

import httpx2
import pytest

from mcp_server_connectwise.connectwise import AuthenticationError, PermissionDeniedError
from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.services.errors import Look, Refused
from mcp_server_connectwise.services.ticket_details import (
    MAX_DESCRIPTION_CHARS,
    MAX_NOTE_CHARS,
    MAX_RESULT_BYTES,
    get_ticket_details,
)
from mcp_server_connectwise.services.ticket_search import SEARCH_FIELDS, TicketQuery, search_conditions, search_tickets
from mcp_server_connectwise.untrusted import UNTRUSTED_MARK

from support.faults import InFlight
from support.harness import sandbox_app, sandbox_session
from support.requests import details as details_of


def test_conditions_are_built_from_names_and_never_concatenated():
    query = TicketQuery(
        board=("Service Desk",),
        status=("New", "In Progress"),
        company="O'Brien",
        entered_after=datetime(2026, 10, 1, tzinfo=timezone.utc),
    )
    assert cw.serialize(search_conditions(query)) == (
        'board/name = "Service Desk" and status/name in ("New", "In Progress") and '
        '(company/name contains "O\'Brien" or company/identifier = "O\'Brien") and '
        "dateEntered >= [2026-10-01T00:00:00Z] and closedFlag = false"
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (TicketQuery(contact="x" * 101), "contact is 101 characters long"),
        (TicketQuery(board=("", "y" * 101)), "board is 101 characters long"),
        (
            TicketQuery(updated_after=datetime(1752, 12, 31, tzinfo=timezone.utc)),
            "outside the dates ConnectWise can store",
        ),
        (TicketQuery(entered_after=datetime(2026, 1, 1)), "has no time zone"),
        (TicketQuery(page=2**31), "is past any result"),
        (TicketQuery(board=tuple(f"Board {i:03}" for i in range(150))), "too long for ConnectWise"),
    ],
)
async def test_a_search_that_cannot_match_or_be_sent_is_refused_by_the_service_before_any_request(query, message):
    app = sandbox_app()
    with pytest.raises(Refused, match=message):
        await search_tickets(sandbox_session(app), query)
    assert app.state.request_log == []


def test_text_that_cannot_be_expressed_safely_is_refused_before_any_request():
    app = sandbox_app()
    session = sandbox_session(app)
    with pytest.raises(Refused, match="both a double quote"):
        asyncio.run(search_tickets(session, TicketQuery(summary_contains='it\'s "broken"')))
    assert app.state.request_log == []


async def test_search_is_one_request_with_only_the_columns_shown():
    app = sandbox_app()
    result = await search_tickets(sandbox_session(app), TicketQuery(board=("SERVICE desk",), limit=5))
    [request] = app.state.request_log
    assert request["method"] == "GET" and request["path"] == "/service/tickets"
    assert request["query"]["fields"] == ",".join(SEARCH_FIELDS)
    assert request["query"]["pageSize"] == "5"
    assert len(result.tickets) == 5 and result.has_more and result.next_page == 2
    assert {row.board for row in result.tickets} == {"Service Desk"}  # names match in any case
    assert all(not row.closed for row in result.tickets)


async def test_filters_match_the_store_and_closed_tickets_need_open_only_false():
    app = sandbox_app()
    session = sandbox_session(app)
    store = app.state.store
    wanted = {
        t["id"]
        for t in store["tickets"].values()
        if t["status"]["name"] in ("Resolved", "New") and t["board"]["name"] == "Service Desk"
    }
    found = await search_tickets(
        session, TicketQuery(board=("service desk",), status=("resolved", "NEW"), open_only=False, limit=100)
    )
    assert {row.id for row in found.tickets} == wanted
    open_only = await search_tickets(
        session, TicketQuery(board=("service desk",), status=("resolved", "NEW"), limit=100)
    )
    assert {row.id for row in open_only.tickets} == {i for i in wanted if not store["tickets"][i]["closedFlag"]}


async def test_last_page_has_no_next_page():
    result = await search_tickets(sandbox_session(), TicketQuery(open_only=False, limit=100, page=2))
    assert result.page == 2 and result.has_more is False and result.next_page is None


async def test_details_come_from_one_round_of_concurrent_requests():
    app = sandbox_app()
    transport = InFlight(httpx2.ASGITransport(app=app))
    session = sandbox_session(app, transport=transport)
    ticket_id = next(t["id"] for t in app.state.store["tickets"].values() if t.get("owner"))
    details = await get_ticket_details(session, details_of(ticket_id))
    assert transport.most == 4  # ticket, notes, time entries, configurations together
    assert [r["path"] for r in app.state.request_log] == [
        f"/service/tickets/{ticket_id}",
        f"/service/tickets/{ticket_id}/notes",
        "/time/entries",
        f"/service/tickets/{ticket_id}/configurations",
    ]
    assert details.description and details.time_entries
    assert all(note.text != details.description for note in details.notes)


async def test_details_of_an_unknown_ticket_are_refused_with_a_hint():
    with pytest.raises(Refused, match="Ticket 99 was not found in tenant acme; check the id") as refused:
        await get_ticket_details(sandbox_session(), details_of(99))
    assert refused.value.look is Look.FIND_TICKET


async def test_details_leave_out_what_was_not_asked_for():
    app = sandbox_app()
    ticket_id = min(app.state.store["tickets"])
    details = await get_ticket_details(
        sandbox_session(app),
        details_of(ticket_id, include_notes=False, include_time=False, include_configurations=False),
    )
    assert details.notes is None and details.time_entries is None and details.configurations is None
    assert len(app.state.request_log) == 2  # the ticket and its notes (the description is a note)


def test_customer_text_is_labelled_untrusted_in_the_schema():
    from mcp_server_connectwise.services.ticket_details import TicketDetails

    schema = TicketDetails.model_json_schema()
    assert f"'{UNTRUSTED_MARK}': True" in str(schema["properties"]["summary"])
    assert schema["$defs"]["NoteView"]["properties"]["text"][UNTRUSTED_MARK] is True


@pytest.mark.parametrize(("order_by", "sent"), [("newest", "id desc"), ("oldest", "id asc")])
async def test_entry_order_is_id_order(order_by, sent):
    app = sandbox_app()
    result = await search_tickets(sandbox_session(app), TicketQuery(order_by=order_by, open_only=False, limit=10))
    [request] = app.state.request_log
    assert request["query"]["orderBy"] == sent
    ids = [row.id for row in result.tickets]
    assert ids == sorted(ids, reverse=order_by == "newest")


async def test_details_ask_for_notes_newest_first_and_time_by_start():
    app = sandbox_app()
    session = sandbox_session(app)
    ticket_id = next(
        t["id"]
        for t in app.state.store["tickets"].values()
        if not app.state.store["statuses"][t["status"]["id"]]["timeEntryNotAllowed"]
    )
    for start in ("2026-11-03T09:00:00Z", "2026-11-02T09:00:00Z"):  # the later-entered one started first
        await session.client.post(
            "/time/entries",
            {
                "chargeToType": "ServiceTicket",
                "chargeToId": ticket_id,
                "member": {"id": 2},
                "timeStart": start,
                "timeEnd": start.replace("T09", "T10"),
            },
        )
    app.state.request_log.clear()
    details = await get_ticket_details(session, details_of(ticket_id))
    query = {request["path"]: request["query"] for request in app.state.request_log}
    assert query[f"/service/tickets/{ticket_id}/notes"]["orderBy"] == "id desc"
    assert query["/time/entries"]["orderBy"] == "timeStart asc"
    starts = [entry.start for entry in details.time_entries]
    assert starts == sorted(starts) and len(app.state.request_log) == 4


class RefusesConfigurations(httpx2.AsyncBaseTransport):
    """The sandbox, except that the ticket-configurations endpoint answers `status` with ConnectWise's error body."""

    def __init__(self, app, status: int) -> None:
        self.inner, self.status = httpx2.ASGITransport(app=app), status

    async def handle_async_request(self, request):
        if request.url.path.endswith("/configurations"):
            return httpx2.Response(self.status, json={"code": "Refused", "message": f"refused with {self.status}"})
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("status", [400, 404, 405])
async def test_configurations_refused_by_a_connectwise_are_left_out_and_said_so(status):
    app = sandbox_app()
    ticket_id = min(app.state.store["tickets"])
    session = sandbox_session(app, transport=RefusesConfigurations(app, status))
    details = await get_ticket_details(session, details_of(ticket_id))
    assert details.configurations is None and details.notes is not None
    assert details.configurations_unavailable == (
        f"ConnectWise would not list the ticket's configurations (HTTP {status}); they are left out."
    )


@pytest.mark.parametrize(("status", "error"), [(401, AuthenticationError), (403, PermissionDeniedError)])
async def test_configurations_failing_for_the_keys_fail_the_read(status, error):
    app = sandbox_app()
    with pytest.raises(error):
        await get_ticket_details(
            sandbox_session(app, transport=RefusesConfigurations(app, status)),
            details_of(min(app.state.store["tickets"])),
        )


async def test_configurations_show_only_what_a_configuration_reference_carries():
    app = sandbox_app()
    session = sandbox_session(app)
    ticket_id = min(app.state.store["tickets"])
    configuration = next(iter(app.state.store["configurations"].values()))
    await session.client.post(f"/service/tickets/{ticket_id}/configurations", {"id": configuration["id"]})
    details = await get_ticket_details(session, details_of(ticket_id))
    assert [view.model_dump() for view in details.configurations] == [
        {"id": configuration["id"], "name": configuration["name"], "type": configuration["type"]["name"]}
    ]
    assert details.configurations_unavailable is None


# --- no silent empties: names the tenant has nowhere ----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "refusal"),
    [
        (
            TicketQuery(board="Helpdesk"),
            "There is no board 'Helpdesk' in tenant acme, so no ticket can match; boards: Service Desk, Alerts,",
        ),
        (
            TicketQuery(status="Open"),
            "No board in tenant acme has a status 'Open', so no ticket can match; statuses: New,",
        ),
        (
            TicketQuery(priority="High"),
            "There is no priority 'High' in tenant acme, so no ticket can match; priorities: Priority 1 - Emergency "
            "Response, Priority 2 - Quick Response,",
        ),
        (
            TicketQuery(owner="nobody"),
            "No member of tenant acme has 'nobody' in their identifier or name, so no ticket can match; members: "
            "api-bot, jsmith,",
        ),
        # One name of a list that exists nowhere is refused too, though the others find tickets.
        (TicketQuery(status=["New", "Open"]), "No board in tenant acme has a status 'Open'"),
    ],
)
async def test_a_name_the_tenant_has_nowhere_is_refused_with_the_valid_names(query, refusal):
    with pytest.raises(Refused) as refused:
        await search_tickets(sandbox_session(), query)
    assert str(refused.value).startswith(refusal)


@pytest.mark.parametrize(
    "query",
    [
        TicketQuery(status="Acknowledged", board="Service Desk"),  # a status of the Alerts board only
        TicketQuery(status="  acknowledged  "),
        TicketQuery(board="LEGACY   helpdesk"),  # an inactive board: its old tickets can still be searched
        TicketQuery(priority="do not respond"),
        TicketQuery(owner="smi"),  # part of jsmith and of Jane Smith
        TicketQuery(owner="García"),
        TicketQuery(owner="kfischer"),  # an inactive member still owns tickets
    ],
)
async def test_a_name_the_tenant_has_somewhere_is_searched_even_if_nothing_matches(query):
    result = await search_tickets(sandbox_session(), query.model_copy(update={"entered_after": None}))
    assert result.tenant == "acme"


async def test_names_cost_no_request_on_a_warm_cache_and_a_search_that_shows_them_none_on_a_cold_one():
    app = sandbox_app()
    session = sandbox_session(app)
    boards = len(app.state.store["boards"])
    query = TicketQuery(board="Service Desk", status="Scheduled", priority="Do Not Respond", owner="dispatch")
    # Cold: the search finds nothing, so each name is checked against its list: boards, every board's
    # statuses, priorities, members.
    result = await search_tickets(session, query)
    assert result.tickets == []
    assert len(app.state.request_log) == 1 + 1 + boards + 1 + 1
    # Warm: the names are checked before the search, from the cache.
    app.state.request_log.clear()
    await search_tickets(session, query)
    assert [r["path"] for r in app.state.request_log] == ["/service/tickets"]
    # Warm, and a name is unknown: the lists it is checked against are fetched once more (they may predate
    # it), then it is refused without searching.
    app.state.request_log.clear()
    with pytest.raises(Refused, match="no priority 'Priority 9'"):
        await search_tickets(session, query.model_copy(update={"priority": "Priority 9"}))
    assert [r["path"] for r in app.state.request_log] == ["/service/priorities"]
    # Cold, and the rows show every name: the search alone.
    app = sandbox_app()
    await search_tickets(sandbox_session(app), TicketQuery(board="Service Desk", status=["New", "In Progress"]))
    assert [r["path"] for r in app.state.request_log] == ["/service/tickets"]


async def test_entered_after_later_than_entered_before_is_refused_before_any_request():
    app = sandbox_app()
    query = TicketQuery(
        entered_after=datetime(2026, 11, 2, tzinfo=timezone.utc),
        entered_before=datetime(2026, 11, 1, tzinfo=timezone.utc),
    )
    with pytest.raises(Refused, match="entered_after .* is not before entered_before .*, so no ticket can match"):
        await search_tickets(sandbox_session(app), query)
    assert app.state.request_log == []


def test_enum_values_are_taken_in_any_case():
    assert TicketQuery.model_validate({"order_by": "Newest"}).order_by == "newest"
    assert TicketQuery.model_validate({"order_by": " RECENTLY_updated "}).order_by == "recently_updated"
    with pytest.raises(ValueError, match="literal_error"):
        TicketQuery.model_validate({"order_by": "latest"})
    assert TicketQuery.model_json_schema()["properties"]["order_by"]["enum"] == [
        "newest",
        "oldest",
        "recently_updated",
        "least_recently_updated",
    ]


# --- bounded details: newest notes first, texts cut, the answer under 32 KB ----------------------------

LONG_NOTE = "Checked the spooler and the driver again; " * 60  # 2,520 characters


async def ticket_with_notes(session, count: int, text: str = LONG_NOTE) -> tuple[int, list[int]]:
    """A new ticket whose description is its first note, then `count` internal notes; the notes' ids."""
    ticket = await session.client.post(
        "/service/tickets",
        {
            "summary": "Printer jams",
            "company": {"identifier": "ACME"},
            "board": {"name": "Service Desk"},
            "initialDescription": "It jams on A4.",
        },
    )
    ids = []
    for n in range(count):
        note = await session.client.post(
            f"/service/tickets/{ticket['id']}/notes", {"text": f"{n}: {text}", "internalAnalysisFlag": True}
        )
        ids.append(note["id"])
    return ticket["id"], ids


def as_json(details) -> bytes:
    payload = details.model_dump(mode="json", exclude_none=True)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


async def test_a_ticket_with_105_long_notes_shows_the_newest_cut_to_size_and_still_its_description():
    app = sandbox_app()
    session = sandbox_session(app)
    ticket_id, ids = await ticket_with_notes(session, 105)
    app.state.request_log.clear()
    details = await get_ticket_details(session, details_of(ticket_id))
    assert details.description == "It jams on A4."  # the first note, on no page read: one more request
    shown = [note.id for note in details.notes]
    assert shown == sorted(ids, reverse=True)[: len(shown)] and 10 <= len(shown) < 20
    stored = app.state.store["notes"]
    assert all(
        note.truncated and note.length == len(stored[note.id]["text"]) > MAX_NOTE_CHARS for note in details.notes
    )
    assert all(len(note.text) == MAX_NOTE_CHARS for note in details.notes)
    assert details.more_notes and details.next_notes_page == 2 and details.notes_page == 1
    assert len(as_json(details)) <= MAX_RESULT_BYTES
    left = len(ids[-20:]) - len(shown)
    assert details.left_out.startswith(f"To keep the answer under 32 KB of JSON, the {left} oldest notes of this page")
    requests = app.state.request_log
    assert [r["path"] for r in requests] == [
        f"/service/tickets/{ticket_id}",
        f"/service/tickets/{ticket_id}/notes",
        "/time/entries",
        f"/service/tickets/{ticket_id}/configurations",
        f"/service/tickets/{ticket_id}/notes",
    ]
    assert requests[1]["query"]["orderBy"] == "id desc" and requests[1]["query"]["pageSize"] == "20"
    assert requests[4]["query"] == {
        "conditions": "detailDescriptionFlag = true",
        "orderBy": "id asc",
        "pageSize": "1",
        "page": "1",
    }


async def test_the_left_out_hint_names_a_page_that_holds_the_notes_left_out():
    app = sandbox_app()
    session = sandbox_session(app)
    ticket_id, ids = await ticket_with_notes(session, 105)
    first = await get_ticket_details(session, details_of(ticket_id, notes_limit=100))
    dropped = sorted(set(ids[-100:]) - {note.id for note in first.notes}, reverse=True)
    assert dropped and first.left_out
    hint = re.search(r"with notes_limit=(\d+), notes_page=(\d+) holds the newest of them", first.left_out)
    again = await get_ticket_details(session, details_of(ticket_id, notes_limit=int(hint[1]), notes_page=int(hint[2])))
    assert dropped[0] in {note.id for note in again.notes}


async def test_paging_newest_first_shows_every_note_once_and_the_description_once():
    app = sandbox_app()
    session = sandbox_session(app)
    ticket_id, ids = await ticket_with_notes(session, 23, text="Short.")
    seen, page = [], 1
    while True:
        details = await get_ticket_details(session, details_of(ticket_id, notes_limit=5, notes_page=page))
        assert details.description == "It jams on A4." and details.left_out is None
        seen += [note.id for note in details.notes]
        if not details.more_notes:
            break
        page = details.next_notes_page
    assert seen == sorted(ids, reverse=True) and page == 5  # 24 notes, the description among them, 5 a page


async def test_without_notes_the_description_is_one_small_request():
    app = sandbox_app()
    session = sandbox_session(app)
    ticket_id, _ = await ticket_with_notes(session, 3)
    app.state.request_log.clear()
    details = await get_ticket_details(
        session, details_of(ticket_id, include_notes=False, include_time=False, include_configurations=False)
    )
    assert details.description == "It jams on A4." and details.notes is None and details.more_notes is False
    [_, notes] = app.state.request_log
    assert notes["query"]["pageSize"] == "1" and notes["query"]["conditions"] == "detailDescriptionFlag = true"


async def test_a_huge_description_and_time_entry_notes_are_cut():
    app = sandbox_app()
    session = sandbox_session(app)
    ticket = await session.client.post(
        "/service/tickets",
        {
            "summary": "Log pasted",
            "company": {"identifier": "ACME"},
            "board": {"name": "Service Desk"},
            "initialDescription": "x" * 50_000,
        },
    )
    for hour in range(30):
        await session.client.post(
            "/time/entries",
            {
                "chargeToType": "ServiceTicket",
                "chargeToId": ticket["id"],
                "member": {"id": 2},
                "timeStart": f"2026-11-0{1 + hour // 10}T{10 + hour % 10}:00:00Z",
                "timeEnd": f"2026-11-0{1 + hour // 10}T{10 + hour % 10}:30:00Z",
                "notes": "y" * 5_000,
            },
        )
    details = await get_ticket_details(session, details_of(ticket["id"]))
    assert len(details.description) == MAX_DESCRIPTION_CHARS and details.description_length == 50_000
    assert all(len(entry.notes) == MAX_NOTE_CHARS for entry in details.time_entries)
    assert len(as_json(details)) <= MAX_RESULT_BYTES
    assert re.search(r"the \d+ earliest time entries are left out\.$", details.left_out)
    assert details.time_entries[-1].start == datetime(2026, 11, 3, 19, tzinfo=timezone.utc)  # the latest stay


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"notes_limit": 0}, "notes_limit must be 1 to 100"), ({"notes_page": 2**31}, "is past any ticket's notes")],
)
async def test_a_notes_page_no_ticket_has_is_refused_before_any_request(fields, message):
    app = sandbox_app()
    with pytest.raises(Refused, match=message):
        await get_ticket_details(sandbox_session(app), details_of(1001, **fields))
    assert app.state.request_log == []
