"""create_ticket, attach_configuration and detach_configuration end to end: an MCP client, our server, the
in-process sandbox."""

from __future__ import annotations

import httpx2
import pytest

from mcp_server_connectwise.services.ticket_create import similarity
from mcp_server_connectwise.untrusted import UNTRUSTED_MARK

from support.customers import company, contacts_of, devices_of, email_of
from support.harness import make_harness, writes


def board(store, name: str) -> dict:
    return next(b for b in store["boards"].values() if b["name"] == name)


def statuses_of(store, board_id: int) -> list[dict]:
    return [s for s in store["statuses"].values() if s["board"]["id"] == board_id]


async def create(harness, **arguments):
    async with harness.client() as client:
        return await client.call_tool("create_ticket", arguments)


async def test_a_created_ticket_reads_back_with_what_the_answer_reported(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    acme = company(store, "ACME")
    contact = contacts_of(store, acme["id"])[0]
    result = await create(
        harness,
        company="acme rocket",  # a unique part of the name
        summary="Front-desk printer is jammed",
        contact=email_of(contact).upper(),
        description="The printer at the front desk shows paper jam.",
        internal_note="Caller sounded annoyed.",
    )
    assert result.is_error is False, result.content[0].text
    answer = result.structured_content
    ticket = store["tickets"][answer["ticket_id"]]
    service_desk = board(store, "Service Desk")  # the tenant's default_board
    default_status = next(s for s in statuses_of(store, service_desk["id"]) if s.get("defaultFlag"))
    default_priority = next(p for p in store["priorities"].values() if p.get("defaultFlag"))
    assert answer["created"] is True
    assert (
        (answer["board"], answer["status"], answer["priority"])
        == (
            ticket["board"]["name"],
            ticket["status"]["name"],
            ticket["priority"]["name"],
        )
        == (service_desk["name"], default_status["name"], default_priority["name"])
    )
    assert (
        (answer["company"], answer["company_identifier"])
        == (acme["name"], "ACME")
        == (
            ticket["company"]["name"],
            ticket["company"]["identifier"],
        )
    )
    assert answer["contact"] == ticket["contact"]["name"] and ticket["contact"]["id"] == contact["id"]
    assert answer["defaulted"] == [
        "board (the tenant's default_board)",
        "status (the board's default)",
        "priority (ConnectWise's default)",
    ]
    assert answer["notified"] is False
    [post] = [r for r in writes(harness.requests())]
    assert post["json"]["processNotifications"] is False  # no email to the customer by surprise
    notes = [n for n in store["notes"].values() if n["ticketId"] == ticket["id"]]
    assert {(n["text"], n["detailDescriptionFlag"], n["internalAnalysisFlag"]) for n in notes} == {
        ("The printer at the front desk shows paper jam.", True, False),
        ("Caller sounded annoyed.", False, True),
    }
    [line] = harness.audit()
    assert [record["id"] for record in line["written"]] == [ticket["id"]]
    assert "Front-desk" not in str(line)  # free text is audited as length and hash only

    async with harness.client() as client:
        listed = await client.list_tools()
        details = await client.call_tool("get_ticket_details", {"ticket_id": ticket["id"]})
    assert details.structured_content["status"] == answer["status"]
    schema = next(t for t in listed.tools if t.name == "create_ticket").output_schema
    assert schema["properties"]["company"][UNTRUSTED_MARK] is True


async def test_a_contact_is_found_by_email_with_one_request(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    acme = company(store, "ACME")
    contact = contacts_of(store, acme["id"])[1]
    result = await create(
        harness, company="ACME", summary="Outlook keeps asking for a password", contact=email_of(contact)
    )
    assert store["tickets"][result.structured_content["ticket_id"]]["contact"]["id"] == contact["id"]
    [lookup] = [r for r in harness.requests() if r["path"] == "/company/contacts"]
    assert lookup["query"]["childConditions"] == f'communicationItems/value = "{email_of(contact)}"'


async def test_a_contact_is_found_by_full_name(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    acme = company(store, "ACME")
    contact = contacts_of(store, acme["id"])[2]
    name = f"{contact['firstName']} {contact['lastName']}".lower()
    result = await create(harness, company="ACME", summary="New starter needs a laptop", contact=name)
    assert store["tickets"][result.structured_content["ticket_id"]]["contact"]["id"] == contact["id"]


def refusals(store) -> dict[str, tuple[dict, str]]:
    """Calls refused before anything is sent, and a phrase of each refusal."""
    service_desk = board(store, "Service Desk")
    here = {s["name"] for s in statuses_of(store, service_desk["id"])}
    elsewhere = next(s["name"] for s in store["statuses"].values() if s["name"] not in here and not s.get("inactive"))
    other = company(store, "SmithJones")
    return {
        "ambiguous company": ({"company": "Ac"}, "matches 2 companies"),
        "unknown company": ({"company": "Acmee Rockets"}, "closest names: Acme Rocket Supplies (ACME)"),
        "unknown contact": ({"company": "ACME", "contact": "Nobody Here"}, "has no active contact 'Nobody Here'"),
        "another company's contact": (
            {"company": "ACME", "contact": email_of(contacts_of(store, other["id"])[0])},
            "has no active contact",
        ),
        "status of another board": ({"company": "ACME", "status": elsewhere}, "is not a status of board Service Desk"),
        "too long a summary": ({"company": "ACME", "summary": "x" * 101}, "summary can have at most 100 characters"),
        "control character": ({"company": "ACME", "description": "bell\x07"}, "control character U+0007"),
        "another company's device": (
            {"company": "ACME", "configurations": [devices_of(store, other["id"])[0]["name"]]},
            "has no configuration",
        ),
        "unknown board": ({"company": "ACME", "board": "Nope"}, "There is no board 'Nope'"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "ambiguous company",
        "unknown company",
        "unknown contact",
        "another company's contact",
        "status of another board",
        "too long a summary",
        "control character",
        "another company's device",
        "unknown board",
    ],
)
async def test_a_refused_create_sends_nothing(tmp_path, case):
    harness = make_harness(tmp_path)
    store = harness.store()
    arguments, phrase = refusals(store)[case]
    tickets_before = len(store["tickets"])
    result = await create(harness, **({"summary": "Scanner offline"} | arguments))
    assert result.is_error is True
    assert phrase in result.content[0].text
    assert writes(harness.requests()) == [] and len(store["tickets"]) == tickets_before
    [line] = harness.audit()
    assert line["outcome"] == "refused"


async def test_without_a_default_board_a_board_must_be_named(tmp_path):
    harness = make_harness(tmp_path, {"acme": {"default_board": None}})
    result = await create(harness, company="ACME", summary="Scanner offline")
    assert result.is_error is True and "Give board" in result.content[0].text
    assert "Service Desk" in result.content[0].text and writes(harness.requests()) == []
    named = await create(harness, company="ACME", summary="Scanner offline", board="alerts")
    ticket = harness.store()["tickets"][named.structured_content["ticket_id"]]
    assert ticket["board"]["name"] == "Alerts"


async def test_a_similar_open_ticket_stops_the_create_until_allowed(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    first = await create(harness, company="ACME", summary="Front-desk printer is jammed")
    first_id = first.structured_content["ticket_id"]
    tickets = len(store["tickets"])

    again = await create(harness, company="ACME", summary="Printer jammed at the front desk")
    answer = again.structured_content
    assert answer["created"] is False and "ticket_id" not in answer
    assert first_id in [d["id"] for d in answer["possible_duplicates"]]
    duplicate = next(d for d in answer["possible_duplicates"] if d["id"] == first_id)
    assert duplicate["status"] == store["tickets"][first_id]["status"]["name"] and duplicate["age_hours"] < 1
    assert len(store["tickets"]) == tickets and "allow_duplicate=true" in answer["next_steps"]
    [duplicate_check] = [r for r in harness.requests()[-1:] if r["path"] == "/service/tickets"]
    assert "closedFlag = false" in duplicate_check["query"]["conditions"]  # one bounded query

    allowed = await create(harness, company="ACME", summary="Printer jammed at the front desk", allow_duplicate=True)
    assert allowed.structured_content["created"] is True and len(store["tickets"]) == tickets + 1
    other_problem = await create(harness, company="ACME", summary="VPN drops every ten minutes")
    assert other_problem.structured_content["created"] is True  # not similar: no false alarm
    elsewhere = await create(harness, company="SmithJones", summary="Front-desk printer is jammed")
    assert elsewhere.structured_content["created"] is True  # another company's ticket is no duplicate


async def test_two_identical_calls_make_two_tickets_only_when_allowed(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    arguments = {"company": "ACME", "summary": "Replace the toner in PRN01", "allow_duplicate": True}
    async with harness.client() as client:
        one = await client.call_tool("create_ticket", arguments)
        two = await client.call_tool("create_ticket", arguments)
        three = await client.call_tool("create_ticket", arguments | {"allow_duplicate": False})
    ids = {one.structured_content["ticket_id"], two.structured_content["ticket_id"]}
    assert len(ids) == 2 and all(store["tickets"][i]["summary"] == arguments["summary"] for i in ids)
    assert three.structured_content["created"] is False


async def test_devices_given_on_create_are_attached(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    acme = company(store, "ACME")
    device, other = devices_of(store, acme["id"])[:2]
    result = await create(
        harness,
        company="ACME",
        summary="Workstation will not boot",
        configurations=[device["name"].lower(), other["serialNumber"], device["id"]],  # the first one twice
    )
    answer = result.structured_content
    assert answer["configurations"] == [device["id"], other["id"]]
    assert store.ticket_configurations[answer["ticket_id"]] == sorted([device["id"], other["id"]])


async def test_attach_twice_is_one_link_and_detach_is_reported_once(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    ticket = next(t for t in store["tickets"].values() if t["id"] not in store.ticket_configurations)
    device = devices_of(store, ticket["company"]["id"])[0]
    arguments = {"ticket_id": ticket["id"], "configuration": device["serialNumber"]}
    async with harness.client() as client:
        attached = await client.call_tool("attach_configuration", arguments)
        again = await client.call_tool("attach_configuration", arguments | {"configuration": device["id"]})
        assert store.ticket_configurations[ticket["id"]] == [device["id"]]
        detached = await client.call_tool("detach_configuration", arguments)
        not_there = await client.call_tool("detach_configuration", arguments)
    assert [r.structured_content["changed"] for r in (attached, again, detached, not_there)] == [
        True,
        False,
        True,
        False,
    ]
    assert ticket["id"] not in store.ticket_configurations
    assert [line["written"] != [] for line in harness.audit()] == [True, False, True, False]


async def test_a_device_is_looked_for_within_the_ticket_company_only(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    ticket = next(t for t in store["tickets"].values() if t["id"] not in store.ticket_configurations)
    foreign = next(c for c in store["configurations"].values() if c["company"]["id"] != ticket["company"]["id"])
    async with harness.client() as client:
        result = await client.call_tool(
            "attach_configuration", {"ticket_id": ticket["id"], "configuration": foreign["id"]}
        )
    assert result.is_error is True and f"belongs to company {foreign['company']['name']}" in result.content[0].text
    assert writes(harness.requests()) == []


def test_similarity_is_shared_content_words_over_all_of_them():
    assert similarity("Printer jammed at front desk", "front-desk printer is jammed") == 1.0
    assert similarity("Printers jammed", "printer jammed") == 1.0  # a plural is the same word
    assert similarity("Printer not printing", "Front desk printer jammed") == pytest.approx(1 / 5)
    assert similarity("the", "a") == 0.0  # nothing but stopwords says nothing
    assert similarity("VPN down", "VPN down") == 1.0


async def test_a_number_names_a_company_by_id_never_by_part_of_a_name(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    uptime = next(c for c in store["companies"].values() if c["name"].startswith("100%"))
    by_id = await create(harness, company=uptime["id"], summary="Router reboots at night")
    assert by_id.structured_content["company_identifier"] == uptime["identifier"]
    missing = await create(harness, company="100", summary="Router reboots at night")
    assert missing.is_error is True and "There is no company '100'" in missing.content[0].text


async def test_true_is_no_company_and_no_device(tmp_path):
    harness = make_harness(tmp_path)
    for arguments in ({"company": True}, {"company": "ACME", "configurations": [True]}):
        result = await create(harness, summary="Scanner offline", **arguments)
        assert result.is_error is True and "not true or false" in result.content[0].text
    assert writes(harness.requests()) == []


async def test_two_companies_of_one_name_are_both_candidates(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    acme = company(store, "ACME")
    harness.sandboxes["acme"].state.writer.create(
        "companies", {"identifier": "ACME2", "name": acme["name"], "site": {"name": "Main"}}, "jsmith"
    )
    result = await create(harness, company=acme["name"].upper(), summary="Scanner offline")
    assert result.is_error is True
    assert "matches 2 companies" in result.content[0].text and "(ACME2)" in result.content[0].text
    assert writes(harness.requests()) == []


class DeletesTheDeviceWhenTheTicketIsMade(httpx2.AsyncBaseTransport):
    """Someone deletes the device in ConnectWise between the ticket's POST and the attach."""

    store: dict = {}
    device_id = 0

    def around(self, inner: httpx2.AsyncBaseTransport) -> httpx2.AsyncBaseTransport:
        self.inner = inner
        return self

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/service/tickets"):
            self.store["configurations"].pop(self.device_id, None)
        return response


async def test_a_device_that_cannot_be_attached_still_reports_the_ticket(tmp_path):
    deleting = DeletesTheDeviceWhenTheTicketIsMade()
    harness = make_harness(tmp_path, wrap=deleting.around)
    store = harness.store()
    device = devices_of(store, company(store, "ACME")["id"])[0]
    deleting.store, deleting.device_id = store, device["id"]
    result = await create(harness, company="ACME", summary="Workstation will not boot", configurations=[device["name"]])
    answer = result.structured_content
    assert result.is_error is False and answer["created"] is True and answer["configurations"] == []
    [why] = answer["configurations_not_attached"]
    assert device["name"] in why and "not found" in why
    [line] = harness.audit()
    assert line["outcome"] == "ok" and [r["id"] for r in line["written"]] == [answer["ticket_id"]]
