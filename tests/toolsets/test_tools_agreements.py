"""list_agreements, and the agreement of update_ticket and create_ticket, end to end: an MCP client, our server,
the in-process sandbox."""

from __future__ import annotations

import pytest

from support.customers import active_agreements, agreements_of, company
from support.harness import make_harness, writes


def open_ticket_of(store, identifier: str) -> dict:
    company_id = company(store, identifier)["id"]
    return next(t for t in store["tickets"].values() if t["company"]["id"] == company_id and not t["closedFlag"])


def named(store, identifier: str, name: str) -> dict:
    return next(a for a in agreements_of(store, company(store, identifier)["id"]) if a["name"] == name)


async def call(harness, tool: str, **arguments):
    async with harness.client() as client:
        return await client.call_tool(tool, arguments)


async def test_the_agreements_listed_are_those_active_today_unless_all_are_asked_for(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    smith = company(store, "SmithJones")
    active = await call(harness, "list_agreements", company="SmithJones")
    every = await call(harness, "list_agreements", company="SmithJones", include_inactive=True)
    none = await call(harness, "list_agreements", company="GreenValley")
    assert [row["id"] for row in active.structured_content["agreements"]] == [
        a["id"] for a in active_agreements(store, smith["id"])
    ]
    cancelled = next(row for row in every.structured_content["agreements"] if not row["usable"])
    assert (cancelled["name"], cancelled["status"], cancelled["why_not"], cancelled["sla"]) == (
        "Managed Services - Silver",
        "Cancelled",
        "cancelled",
        "Premium SLA",
    )
    assert none.structured_content["agreements"] == []
    assert none.structured_content["next_steps"].startswith("The company has no agreement active today")


async def test_a_ticket_is_put_under_an_agreement_of_its_company_by_name_with_one_patch(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    ticket = open_ticket_of(store, "ACME")
    gold = named(store, "ACME", "Managed Services - Gold")
    result = await call(harness, "update_ticket", ticket_id=ticket["id"], agreement="managed services - gold")
    assert result.is_error is False, result.content[0].text
    [patch] = writes(harness.requests())
    assert patch["json"] == [{"op": "replace", "path": "agreement", "value": {"id": gold["id"]}}]
    assert store["tickets"][ticket["id"]]["agreement"]["id"] == gold["id"]
    assert result.structured_content["changes"] == [
        {"field": "agreement", "before": ticket["agreement"]["name"], "after": gold["name"]}
    ]
    again = await call(harness, "update_ticket", ticket_id=ticket["id"], agreement=gold["id"])
    assert again.structured_content["patched"] is False and len(writes(harness.requests())) == 1


def refusals(store) -> dict[str, tuple[str, object, list[str]]]:
    """update_ticket calls refused before anything is sent: the ticket's company, the agreement, phrases."""
    muller = named(store, "MullerSohne", "Block Time 20 Hours")
    return {
        "another company's agreement": (
            "ACME",
            muller["id"],
            [
                f"has no agreement {muller['id']} (agreement {muller['id']}, Block Time 20 Hours, is one of company "
                f"{muller['company']['name']})",
                "the active agreements of company Acme Rocket Supplies (ACME): Break Fix (id 1, Break Fix), "
                "Managed Services - Gold (id 2, Managed Services).",
            ],
        ),
        "expired agreement": (
            "OBrienDental",
            "Block Time 10 Hours",
            [
                "Agreement Block Time 10 Hours (id 4, Block Time) of company O'Brien Family Dental (OBrienDental) is "
                "expired (it ended 2026-09-03), so no ticket can be put under it; the active agreements of company "
                "O'Brien Family Dental (OBrienDental): Managed Services - Gold (id 3, Managed Services).",
            ],
        ),
        "cancelled agreement": ("SmithJones", "silver", ["is cancelled, so no ticket can be put under it"]),
        "a company without agreements": ("GreenValley", "Break Fix", ["has no active agreement."]),
    }


@pytest.mark.parametrize(
    "case", ["another company's agreement", "expired agreement", "cancelled agreement", "a company without agreements"]
)
async def test_an_agreement_a_ticket_cannot_be_put_under_is_refused_with_the_usable_ones(tmp_path, case):
    harness = make_harness(tmp_path)
    store = harness.store()
    identifier, agreement, phrases = refusals(store)[case]
    ticket = open_ticket_of(store, identifier)
    result = await call(harness, "update_ticket", ticket_id=ticket["id"], agreement=agreement)
    assert result.is_error is True
    text = result.content[0].text
    assert all(phrase in text for phrase in phrases), text
    assert text.endswith("Use list_agreements to see the company's agreements.")
    assert writes(harness.requests()) == [] and store["tickets"][ticket["id"]] == ticket


async def test_a_ticket_is_created_under_the_agreement_asked_for(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    result = await call(harness, "create_ticket", company="ACME", summary="Server room is hot", agreement="break fix")
    answer = result.structured_content
    assert answer["agreement"] == "Break Fix" and not any("agreement" in d for d in answer["defaulted"])
    assert store["tickets"][answer["ticket_id"]]["agreement"]["id"] == named(store, "ACME", "Break Fix")["id"]


async def test_a_create_under_an_expired_agreement_sends_nothing(tmp_path):
    harness = make_harness(tmp_path)
    tickets = len(harness.store()["tickets"])
    result = await call(
        harness,
        "create_ticket",
        company="OBrienDental",
        summary="Chair 3 x-ray is down",
        agreement="Block Time 10 Hours",
    )
    assert result.is_error is True and "is expired" in result.content[0].text
    assert writes(harness.requests()) == [] and len(harness.store()["tickets"]) == tickets


async def test_the_tenants_default_agreement_type_is_attached_only_when_the_company_has_exactly_one(tmp_path):
    harness = make_harness(tmp_path, {"acme": {"default_agreement_type": "managed services"}})
    store = harness.store()
    acme = await call(harness, "create_ticket", company="ACME", summary="New laptop for Björn")
    answer = acme.structured_content
    gold = named(store, "ACME", "Managed Services - Gold")
    assert (
        answer["agreement"] == gold["name"] and store["tickets"][answer["ticket_id"]]["agreement"]["id"] == gold["id"]
    )
    assert (
        "agreement (the company's only active Managed Services agreement: the tenant's default_agreement_type)"
        in answer["defaulted"]
    )

    smith = await call(harness, "create_ticket", company="SmithJones", summary="Scanner offline")  # cancelled only
    assert "agreement" not in smith.structured_content
    assert "agreement" not in store["tickets"][smith.structured_content["ticket_id"]]
    assert not any("agreement" in d for d in smith.structured_content["defaulted"])

    muller = company(store, "MullerSohne")
    for name in ("Managed Services - Gold", "Managed Services - Backup"):
        harness.sandboxes["acme"].state.writer.create(
            "agreements",
            {
                "name": name,
                "type": {"name": "Managed Services"},
                "company": {"id": muller["id"]},
                "contact": {"id": muller["defaultContact"]["id"]},
                "noEndingDateFlag": True,
                "agreementStatus": "Active",
            },
            "jsmith",
        )
    two = await call(harness, "create_ticket", company="MullerSohne", summary="Printer offline")
    assert "agreement" not in store["tickets"][two.structured_content["ticket_id"]]
    [left_out] = [d for d in two.structured_content["defaulted"] if "agreement" in d]
    assert left_out.startswith("agreement left out: the company has 2 active Managed Services agreements")
