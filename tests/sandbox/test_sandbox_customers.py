"""The sandbox's customers: companies with sites, statuses and types, contacts with communication items,
agreements seeded with the hard cases and consistent with the tickets, and `/count` and `childConditions` on
each, as ConnectWise answers them."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.seed import SEED_NOW
from mcp_server_connectwise.sandbox.store import iso

from support.customers import active_on, agreements_of, company
from support.sandbox_http import sandbox_http

SEEDED_DAY = datetime.fromtimestamp(SEED_NOW, timezone.utc).date()


@pytest.fixture
def app():
    return create_app(SandboxSettings(tickets=300))


@pytest.fixture
async def client(app):
    async with sandbox_http(app) as client:
        yield client


def test_agreements_are_seeded_with_the_cases_customers_have(app):
    store = app.state.store
    customers = [c for c in store["companies"].values() if c["types"][0]["name"] != "Owner"]
    usable = {
        c["identifier"]: [a for a in agreements_of(store, c["id"]) if active_on(a, SEEDED_DAY)] for c in customers
    }
    assert [identifier for identifier, found in usable.items() if not found] == ["GreenValley", "Riverside"]
    assert [identifier for identifier, found in usable.items() if len(found) == 2] == ["ACME"]
    agreements = list(store["agreements"].values())
    expired = [a for a in agreements if a["agreementStatus"] == "Expired"]
    cancelled = [a for a in agreements if a["cancelledFlag"]]
    assert len(expired) == 1 and expired[0]["endDate"] < iso(SEED_NOW)
    assert len(cancelled) == 1 and cancelled[0]["agreementStatus"] == "Cancelled" and "dateCancelled" in cancelled[0]
    assert any(a["noEndingDateFlag"] and "endDate" not in a for a in agreements)
    for agreement in agreements:  # each for a contact of its own company
        assert store["contacts"][agreement["contact"]["id"]]["company"]["id"] == agreement["company"]["id"]


def test_every_ticket_is_under_an_active_agreement_of_its_own_company_or_none(app):
    store = app.state.store
    under = 0
    for ticket in store["tickets"].values():
        if "agreement" not in ticket:
            assert not any(active_on(a, SEEDED_DAY) for a in agreements_of(store, ticket["company"]["id"]))
            continue
        agreement = store["agreements"][ticket["agreement"]["id"]]
        assert agreement["company"]["id"] == ticket["company"]["id"] and active_on(agreement, SEEDED_DAY)
        under += 1
    assert 0 < under < len(store["tickets"])


def test_companies_have_a_main_site_a_status_and_types(app):
    store = app.state.store
    companies = list(store["companies"].values())
    assert all(c["site"]["name"] == "Main" for c in companies)
    assert {c["status"]["name"] for c in companies} == {"Active", "Credit Hold"}
    assert any(len(c["types"]) == 2 for c in companies)
    [gone] = [c for c in store["contacts"].values() if c["inactiveFlag"]]  # a contact who left
    assert gone["company"]["id"] == company(store, "ACME")["id"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/company/companies", {"conditions": 'status/name = "Active"'}),
        ("/company/contacts", {"conditions": "company/id = 2 and inactiveFlag = false"}),
        ("/finance/agreements", {"conditions": "company/id = 2 and cancelledFlag = false"}),
        ("/company/configurations", {"conditions": "company/id = 2 and activeFlag = true"}),
        ("/company/contacts", {"childConditions": 'communicationItems/value contains "@acme.example"'}),
        ("/company/companies", {"childConditions": 'types/name = "Vendor"'}),
    ],
)
async def test_count_counts_what_the_list_lists(client, path, params):
    listed = await client.get(path, params={**params, "pageSize": 1000})
    counted = await client.get(f"{path}/count", params=params)
    assert listed.status_code == counted.status_code == 200
    assert counted.json() == {"count": len(listed.json())} and len(listed.json()) > 0


async def test_child_conditions_reach_a_contacts_emails_and_a_companys_types(app, client):
    store = app.state.store
    acme = company(store, "ACME")
    email = next(i["value"] for i in store["contacts"][3]["communicationItems"] if i["communicationType"] == "Email")
    by_email = await client.get(
        "/company/contacts", params={"childConditions": f'communicationItems/value = "{email}"'}
    )
    assert [c["id"] for c in by_email.json()] == [3] and store["contacts"][3]["company"]["id"] == acme["id"]
    vendors = await client.get("/company/companies", params={"childConditions": 'types/name = "vendor"'})
    assert [c["identifier"] for c in vendors.json()] == ["BracketSys"]


async def test_a_ticket_takes_only_an_agreement_of_its_own_company(app, client):
    """[I] (see Writer._agreement_of_company): another company's agreement is a 400, its own is taken."""
    store = app.state.store
    acme = company(store, "ACME")
    ticket = next(t for t in store["tickets"].values() if t["company"]["id"] == acme["id"])
    theirs = agreements_of(store, company(store, "MullerSohne")["id"])[0]
    ours = next(a for a in agreements_of(store, acme["id"]) if a["name"] == "Managed Services - Gold")
    refused = await client.patch(
        f"/service/tickets/{ticket['id']}", json=[{"op": "replace", "path": "agreement", "value": {"id": theirs["id"]}}]
    )
    assert refused.status_code == 400
    assert refused.json()["errors"][0] | {"message": ""} == {
        "code": "InvalidField",
        "message": "",
        "resource": "ticket",
        "field": "agreement",
    }
    taken = await client.patch(
        f"/service/tickets/{ticket['id']}", json=[{"op": "replace", "path": "agreement", "value": {"id": ours["id"]}}]
    )
    assert taken.status_code == 200 and taken.json()["agreement"]["name"] == "Managed Services - Gold"
    created = await client.post(
        "/service/tickets",
        json={"summary": "x", "company": {"id": acme["id"]}, "board": {"id": 1}, "agreement": {"id": theirs["id"]}},
    )
    assert created.status_code == 400
