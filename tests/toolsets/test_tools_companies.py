"""search_companies and get_company end to end: an MCP client, our server, the in-process sandbox."""

from __future__ import annotations

from mcp_server_connectwise.untrusted import UNTRUSTED_MARK

from support.customers import active_agreements, company, devices_by_type, open_tickets
from support.harness import make_harness


async def test_a_search_lists_matching_companies_in_compact_rows(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    async with harness.client() as client:
        result = await client.call_tool("search_companies", {"type": "Client", "limit": 100})
    rows = result.structured_content["companies"]
    clients = [c for c in store["companies"].values() if "Client" in [t["name"] for t in c["types"]]]
    assert {row["id"] for row in rows} == {c["id"] for c in clients} and len(rows) == len(store["companies"]) - 1
    hundred = next(row for row in rows if row["identifier"] == "HundredPct")
    record = company(store, "HundredPct")
    assert hundred == {
        "id": record["id"],
        "identifier": "HundredPct",
        "name": record["name"],
        "status": "Credit Hold",
        "types": ["Client"],
        "phone": record["phoneNumber"],
        "default_contact": record["defaultContact"]["name"],
    }
    [request] = harness.requests()
    assert request["query"]["childConditions"] == 'types/name = "Client"'


async def test_a_search_says_how_to_go_on(tmp_path):
    harness = make_harness(tmp_path)
    async with harness.client() as client:
        more = await client.call_tool("search_companies", {"limit": 3})
        none = await client.call_tool("search_companies", {"name": "no such company"})
    assert more.structured_content["next_page"] == 2
    assert more.structured_content["next_steps"].startswith("More companies match: call again with page=2")
    assert none.structured_content["companies"] == []
    assert none.structured_content["next_steps"].startswith("No company matches")


async def test_a_company_reads_with_its_agreements_devices_and_open_tickets_as_the_store_has_them(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    acme = company(store, "ACME")
    async with harness.client() as client:
        cold = await client.call_tool("get_company", {"company": "rocket"})  # a unique part of the name
        warm = await client.call_tool("get_company", {"company": acme["id"]})
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert cold.structured_content == warm.structured_content | {"next_steps": cold.structured_content["next_steps"]}
    details = warm.structured_content
    assert details["identifier"] == "ACME" and details["status"] == "Active" and details["types"] == ["Client"]
    assert [a["name"] for a in details["agreements"]] == sorted(a["name"] for a in active_agreements(store, acme["id"]))
    open_ended = next(a for a in details["agreements"] if a["name"] == "Managed Services - Gold")
    assert "end" not in open_ended  # it has no end date
    assert details["configurations_by_type"] == devices_by_type(store, acme["id"])
    assert details["open_tickets"] == open_tickets(store, acme["id"])
    assert details["default_contact"] == {"id": acme["defaultContact"]["id"], "name": acme["defaultContact"]["name"]}
    assert "untrusted" in details["notice"] and warm.meta["ifc"]["integrity"] == "untrusted"
    schema = listed["get_company"].output_schema
    assert schema["properties"]["name"][UNTRUSTED_MARK] is True
    cold_line, warm_line = harness.audit()
    assert [r["path"] for r in cold_line["requests"]][0] == "/company/companies"  # the company list, once
    assert len(cold_line["requests"]) == 5 and len(warm_line["requests"]) == 4


async def test_an_ambiguous_or_unknown_company_is_refused_with_candidates_and_where_to_look(tmp_path):
    harness = make_harness(tmp_path)
    async with harness.client() as client:
        ambiguous = await client.call_tool("get_company", {"company": "Ac"})
        unknown = await client.call_tool("get_company", {"company": "Acmee Rockets"})
    assert ambiguous.is_error and unknown.is_error
    assert ambiguous.content[0].text.endswith(
        "'Ac' matches 2 companies in tenant acme: Acme Rocket Supplies (ACME), [Bracket] Systems Inc. (BracketSys); "
        "give company as one of their identifiers. Use search_companies to find the company."
    )
    assert "the closest names: Acme Rocket Supplies (ACME)" in unknown.content[0].text
    assert [line["outcome"] for line in harness.audit()] == ["refused", "refused"]
