"""search_contacts and get_contact end to end: an MCP client, our server, the in-process sandbox."""

from __future__ import annotations

from mcp_server_connectwise.untrusted import UNTRUSTED_MARK

from support.customers import company, contacts_of, email_of
from support.harness import make_harness


async def search(harness, **arguments):
    async with harness.client() as client:
        return await client.call_tool("search_contacts", arguments)


async def test_a_contact_is_found_by_email_with_one_request(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    contact = contacts_of(store, company(store, "ACME")["id"])[1]
    result = await search(harness, email=email_of(contact).upper())
    [row] = result.structured_content["contacts"]
    assert row == {
        "id": contact["id"],
        "name": f"{contact['firstName']} {contact['lastName']}",
        "company": contact["company"]["name"],
        "company_identifier": "ACME",
        "title": contact["title"],
        "email": email_of(contact),
        "phone": contact["defaultPhoneNbr"],
    }
    [request] = harness.requests()
    assert request["path"] == "/company/contacts"
    assert request["query"]["childConditions"] == f'communicationItems/value = "{email_of(contact).upper()}"'
    assert request["query"]["conditions"] == "inactiveFlag = false"


async def test_a_full_name_is_split_across_first_and_last_name(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    namesakes = [c["id"] for c in store["contacts"].values() if c["lastName"] == "Ní Bhriain"]
    result = await search(harness, name="siobhán  ní bhriain")
    assert [row["id"] for row in result.structured_content["contacts"]] == namesakes and len(namesakes) > 1
    [request] = harness.requests()
    assert request["query"]["conditions"] == (
        'inactiveFlag = false and ((firstName = "siobhán" and lastName = "ní bhriain") or '
        '(firstName = "siobhán ní" and lastName = "bhriain"))'
    )


async def test_a_phone_number_or_a_domain_finds_contacts_through_their_communication_items(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    acme = company(store, "ACME")
    contact = contacts_of(store, acme["id"])[2]
    by_phone = await search(harness, phone=contact["defaultPhoneNbr"][4:])
    assert [row["id"] for row in by_phone.structured_content["contacts"]] == [contact["id"]]
    by_domain = await search(harness, email="@acme.example")
    assert {row["id"] for row in by_domain.structured_content["contacts"]} == {
        c["id"] for c in contacts_of(store, acme["id"])
    }
    assert [r["query"]["childConditions"] for r in harness.requests()] == [
        f'communicationItems/value contains "{contact["defaultPhoneNbr"][4:]}"',
        'communicationItems/value contains "@acme.example"',
    ]


async def test_inactive_contacts_are_left_out_unless_asked_for(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    acme = company(store, "ACME")
    active = await search(harness, company="ACME", limit=100)
    everyone = await search(harness, company="acme rocket", include_inactive=True, limit=100)
    assert {row["id"] for row in active.structured_content["contacts"]} == {
        c["id"] for c in contacts_of(store, acme["id"])
    }
    [gone] = [row for row in everyone.structured_content["contacts"] if row.get("inactive")]
    assert gone["id"] in {c["id"] for c in contacts_of(store, acme["id"], inactive=True) if c["inactiveFlag"]}
    assert len(everyone.structured_content["contacts"]) == len(active.structured_content["contacts"]) + 1


async def test_an_ambiguous_company_is_refused_before_any_contact_is_searched(tmp_path):
    harness = make_harness(tmp_path)
    result = await search(harness, company="Ac", name="Smith")
    assert result.is_error and "'Ac' matches 2 companies" in result.content[0].text
    assert "/company/contacts" not in [r["path"] for r in harness.requests()]


async def test_a_contact_reads_with_every_email_and_phone(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    contact = contacts_of(store, company(store, "ACME")["id"])[0]
    async with harness.client() as client:
        result = await client.call_tool("get_contact", {"contact_id": contact["id"]})
        unknown = await client.call_tool("get_contact", {"contact_id": 99999})
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    details = result.structured_content
    assert (details["first_name"], details["last_name"], details["title"], details["company_identifier"]) == (
        contact["firstName"],
        contact["lastName"],
        contact["title"],
        "ACME",
    )
    assert [(c["kind"], c["type"], c["value"], c.get("default", False)) for c in details["communication"]] == [
        (i["communicationType"], i["type"]["name"], i["value"], i["defaultFlag"]) for i in contact["communicationItems"]
    ]
    assert unknown.is_error and unknown.content[0].text.endswith(
        "Contact 99999 was not found in tenant acme; check the id. Use search_contacts to find the contact."
    )
    schema = listed["get_contact"].output_schema
    assert schema["properties"]["title"][UNTRUSTED_MARK] is True and result.meta["ifc"]["integrity"] == "untrusted"


async def test_a_contact_refusal_of_create_ticket_points_at_the_contact_search(tmp_path):
    harness = make_harness(tmp_path)
    async with harness.client() as client:
        result = await client.call_tool("create_ticket", {"company": "ACME", "summary": "x", "contact": "Nobody"})
    assert result.is_error and result.content[0].text.endswith("Use search_contacts to find the contact.")
