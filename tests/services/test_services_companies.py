"""Company searches and a company in full, as service functions against the sandbox (no MCP)."""

from __future__ import annotations

import httpx2
import pytest

from mcp_server_connectwise.services.companies import COMPANIES, CompanyQuery, search_companies
from mcp_server_connectwise.services.company_details import CompanyRequest, get_company
from mcp_server_connectwise.services.errors import Look, Refused

from support.customers import active_agreements, company, devices_by_type, open_tickets
from support.harness import sandbox_app, sandbox_session
from support.transports import InFlight


async def test_a_company_is_read_in_one_round_of_concurrent_requests_and_its_figures_are_the_stores():
    app = sandbox_app()
    store = app.state.store
    transport = InFlight(httpx2.ASGITransport(app=app))
    session = sandbox_session(app, transport=transport)
    acme = company(store, "ACME")
    # Devices that must and must not be counted: a new active printer and a retired workstation.
    for name, kind, active in (("ACME-PRN02", "Printer", True), ("ACME-WS-001", "Managed Workstation", False)):
        await session.client.post(
            "/company/configurations",
            {"name": name, "type": {"name": kind}, "company": {"id": acme["id"]}, "activeFlag": active},
        )
    await session.catalog.load(COMPANIES)  # warm: the company is resolved without a request
    mark = len(app.state.request_log)
    transport.most = 0

    details = await get_company(session, CompanyRequest(company="acme"))

    assert transport.most == 4  # the company, its agreements, its devices and its open tickets together
    requests = app.state.request_log[mark:]
    assert [r["path"] for r in requests] == [
        f"/company/companies/{acme['id']}",
        "/finance/agreements",
        "/company/configurations",
        "/service/tickets/count",
    ]
    assert requests[3]["query"]["conditions"] == f"company/id = {acme['id']} and closedFlag = false"
    assert [(a.id, a.name) for a in details.agreements] == [
        (a["id"], a["name"]) for a in sorted(active_agreements(store, acme["id"]), key=lambda a: a["name"])
    ]
    assert len(details.agreements) == 2  # the seed gives ACME two
    assert details.configurations_by_type == devices_by_type(store, acme["id"])
    assert details.configurations_by_type["Printer"] == 2 and details.configurations == sum(
        devices_by_type(store, acme["id"]).values()
    )
    assert details.open_tickets == open_tickets(store, acme["id"]) > 0
    assert (details.name, details.identifier, details.phone) == (acme["name"], "ACME", acme["phoneNumber"])
    assert details.site is not None and details.site.name == acme["site"]["name"]
    assert details.site.address == f"{acme['addressLine1']}, {acme['city']}, {acme['state']} {acme['zip']}"
    assert details.default_contact is not None and details.default_contact.id == acme["defaultContact"]["id"]


async def test_a_company_without_agreements_or_open_tickets_reads_as_none():
    app = sandbox_app()
    store = app.state.store
    green = company(store, "GreenValley")
    for ticket in [t for t in store["tickets"].values() if t["company"]["id"] == green["id"]]:
        store.put("tickets", {**ticket, "closedFlag": True})
    details = await get_company(sandbox_session(app), CompanyRequest(company="GreenValley"))
    assert details.agreements == [] and details.open_tickets == 0 and details.configurations > 0


async def test_a_search_is_one_request_with_the_type_in_child_conditions():
    app = sandbox_app()
    result = await search_companies(sandbox_session(app), CompanyQuery(name="Systems", type="vendor", status="active"))
    [request] = app.state.request_log
    assert request["query"]["conditions"] == (
        'name contains "Systems" and status/name = "active" and deletedFlag = false'
    )
    assert request["query"]["childConditions"] == 'types/name = "vendor"'
    assert [(row.identifier, row.types) for row in result.companies] == [("BracketSys", ["Client", "Vendor"])]


async def test_a_deleted_company_is_never_listed():
    app = sandbox_app()
    store = app.state.store
    session = sandbox_session(app)
    acme = company(store, "ACME")
    assert [row.id for row in (await search_companies(session, CompanyQuery(identifier="acme"))).companies] == [2]
    await session.client.patch(
        f"/company/companies/{acme['id']}", [{"op": "replace", "path": "deletedFlag", "value": True}]
    )
    assert (await search_companies(session, CompanyQuery(identifier="acme"))).companies == []


async def test_rows_come_in_pages_by_name():
    app = sandbox_app()
    session = sandbox_session(app)
    first = await search_companies(session, CompanyQuery(limit=5))
    second = await search_companies(session, CompanyQuery(limit=5, page=first.next_page))
    names = sorted((c["name"] for c in app.state.store["companies"].values()), key=str.casefold)
    assert first.has_more and [row.name for row in first.companies + second.companies] == names[:10]
    status = {c["id"]: c["status"]["name"] for c in app.state.store["companies"].values()}
    assert all(row.status == status[row.id] for row in first.companies + second.companies)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (CompanyQuery(name="x" * 101), "name is 101 characters long"),
        (CompanyQuery(identifier="a\"b'c"), "both a double quote"),
        (CompanyQuery(page=2**31), "is past any result"),
    ],
)
async def test_a_search_that_cannot_match_or_be_sent_is_refused_before_any_request(query, message):
    app = sandbox_app()
    with pytest.raises(Refused, match=message):
        await search_companies(sandbox_session(app), query)
    assert app.state.request_log == []


async def test_an_ambiguous_company_is_refused_with_its_candidates_and_a_pointer_to_the_search():
    with pytest.raises(Refused, match=r"'Ac' matches 2 companies .*Acme Rocket Supplies \(ACME\)") as refused:
        await get_company(sandbox_session(), CompanyRequest(company="Ac"))
    assert refused.value.look is Look.FIND_COMPANY
