"""Ticket reads, as service functions against the sandbox (no MCP)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import httpx2
import pytest

from mcp_server_connectwise.connectwise import AuthenticationError, PermissionDeniedError
from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.services.errors import Look, Refused
from mcp_server_connectwise.services.ticket_details import get_ticket_details
from mcp_server_connectwise.services.ticket_search import SEARCH_FIELDS, TicketQuery, search_conditions, search_tickets
from mcp_server_connectwise.untrusted import UNTRUSTED_DESCRIPTION

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


class InFlight(httpx2.AsyncBaseTransport):
    """Wraps the sandbox transport to measure how many requests overlap."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner, self.now, self.most = inner, 0, 0

    async def handle_async_request(self, request):
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.01)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.now -= 1


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
    assert UNTRUSTED_DESCRIPTION in str(schema["properties"]["summary"])
    assert UNTRUSTED_DESCRIPTION in str(schema["$defs"]["NoteView"]["properties"]["text"])


@pytest.mark.parametrize(("order_by", "sent"), [("newest", "id desc"), ("oldest", "id asc")])
async def test_entry_order_is_id_order(order_by, sent):
    app = sandbox_app()
    result = await search_tickets(sandbox_session(app), TicketQuery(order_by=order_by, open_only=False, limit=10))
    [request] = app.state.request_log
    assert request["query"]["orderBy"] == sent
    ids = [row.id for row in result.tickets]
    assert ids == sorted(ids, reverse=order_by == "newest")


async def test_details_ask_for_notes_oldest_first_and_time_by_start():
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
    assert query[f"/service/tickets/{ticket_id}/notes"]["orderBy"] == "id asc"
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
