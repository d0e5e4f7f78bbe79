"""Which agreement a ticket can be put under, as service functions against the sandbox (no MCP)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from mcp_server_connectwise.connectwise.models import Agreement, Company
from mcp_server_connectwise.services.agreements import (
    AgreementQuery,
    list_agreements,
    not_usable_because,
    usable_agreement,
)
from mcp_server_connectwise.services.errors import Look, Refused

from support.customers import active_on, agreements_of, company, today
from support.harness import sandbox_app, sandbox_session

DAY = date(2026, 12, 1)


def company_of(store, identifier: str) -> Company:
    record = company(store, identifier)
    return Company(id=record["id"], identifier=identifier, name=record["name"])


def agreement(**fields) -> Agreement:
    return Agreement.model_validate({"id": 1, "name": "A", "agreementStatus": "Active", **fields})


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"startDate": "2026-01-01T00:00:00Z", "endDate": "2026-12-31T00:00:00Z"}, None),
        ({"endDate": "2026-12-01T00:00:00Z"}, None),  # its last day is today
        ({"endDate": "2026-11-30T23:59:59Z"}, "expired (it ended 2026-11-30)"),
        ({"endDate": "2020-01-01T00:00:00Z", "noEndingDateFlag": True}, None),  # an end date it does not have
        ({"cancelledFlag": True}, "cancelled"),
        ({"agreementStatus": "Expired", "endDate": "2026-09-03T17:00:00Z"}, "expired (it ended 2026-09-03)"),
        ({"agreementStatus": "Inactive"}, "inactive"),
        ({"startDate": "2026-12-02T00:00:00Z"}, "not started (it starts 2026-12-02)"),
        ({"agreementStatus": None}, None),  # a ConnectWise that leaves the status out goes by the dates
    ],
)
def test_an_agreement_is_usable_on_the_days_it_is_active(fields, why):
    assert not_usable_because(agreement(**fields), DAY) == why


async def test_the_listing_is_the_companys_agreements_with_why_the_others_cannot_be_used():
    app = sandbox_app()
    store = app.state.store
    session = sandbox_session(app)
    for identifier in ("ACME", "OBrienDental", "SmithJones", "GreenValley"):
        wanted = agreements_of(store, company(store, identifier)["id"])
        listed = await list_agreements(session, AgreementQuery(company=identifier, include_inactive=True))
        assert {row.id: row.usable for row in listed.agreements} == {a["id"]: active_on(a, today()) for a in wanted}
        active = await list_agreements(session, AgreementQuery(company=identifier))
        assert [row.id for row in active.agreements] == [row.id for row in listed.agreements if row.usable]
    obrien = await list_agreements(session, AgreementQuery(company="OBrienDental", include_inactive=True))
    expired = next(row for row in obrien.agreements if not row.usable)
    assert (expired.name, expired.status, expired.why_not) == (
        "Block Time 10 Hours",
        "Expired",
        f"expired (it ended {expired.end})",
    )


async def test_a_renewal_that_kept_its_name_is_the_one_taken():
    app = sandbox_app()
    session = sandbox_session(app)
    acme = company(app.state.store, "ACME")
    old = await session.client.post(
        "/finance/agreements",
        {
            "name": "Break Fix",
            "type": {"name": "Break Fix"},
            "company": {"id": acme["id"]},
            "contact": {"id": acme["defaultContact"]["id"]},
            "startDate": "2023-01-01T00:00:00Z",
            "endDate": "2024-12-31T00:00:00Z",
            "agreementStatus": "Expired",
        },
    )
    found = await usable_agreement(session, Company(id=acme["id"], name=acme["name"]), "break fix")
    assert found.id != old["id"] and found.name == "Break Fix" and not_usable_because(found, today()) is None


async def test_an_agreement_is_refused_when_ambiguous_or_another_companys_naming_whose_it_is():
    app = sandbox_app()
    store = app.state.store
    session = sandbox_session(app)
    acme = company(store, "ACME")
    acme_company = Company(id=acme["id"], identifier="ACME", name=acme["name"])
    with pytest.raises(Refused, match=r"'e' matches 2 agreements of company Acme Rocket Supplies \(ACME\)") as refused:
        await usable_agreement(session, acme_company, "e")
    assert refused.value.look is Look.AGREEMENTS
    muller = company(store, "MullerSohne")
    [theirs] = agreements_of(store, muller["id"])
    with pytest.raises(Refused) as refused:
        await usable_agreement(session, acme_company, theirs["id"])
    assert str(refused.value) == (
        f"Company Acme Rocket Supplies (ACME) has no agreement {theirs['id']} (agreement {theirs['id']}, "
        f"{theirs['name']}, is one of company {muller['name']}); the active agreements of company Acme Rocket "
        "Supplies (ACME): Break Fix (id 1, Break Fix), Managed Services - Gold (id 2, Managed Services)."
    )
    with pytest.raises(Refused, match="has no agreement 20"):  # an id, not a part of "Block Time 20 Hours"
        await usable_agreement(session, company_of(store, "SmithJones"), 20)
    green = company(store, "GreenValley")
    with pytest.raises(Refused, match=r"no agreement 'Gold'; company Green Valley .* has no active agreement\."):
        await usable_agreement(session, Company(id=green["id"], name=green["name"]), "Gold")


async def test_an_agreement_past_its_end_date_is_refused_even_when_its_status_still_says_active():
    app = sandbox_app()
    store = app.state.store
    session = sandbox_session(app)
    acme = company(store, "ACME")
    yesterday = (today() - timedelta(days=1)).isoformat()
    await session.client.patch(
        "/finance/agreements/1", [{"op": "replace", "path": "endDate", "value": f"{yesterday}T12:00:00Z"}]
    )
    assert store["agreements"][1]["agreementStatus"] == "Active"
    with pytest.raises(
        Refused, match=rf"Agreement Break Fix \(id 1, Break Fix\) .* is expired \(it ended {yesterday}\)"
    ):
        await usable_agreement(session, Company(id=acme["id"], name=acme["name"]), 1)
