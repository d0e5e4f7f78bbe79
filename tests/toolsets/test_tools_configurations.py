"""search_configurations, get_configuration and upsert_configuration end to end: an MCP client, our server, the
in-process sandbox."""

from __future__ import annotations

import pytest

from mcp_server_connectwise.untrusted import UNTRUSTED_MARK

from support.customers import company
from support.faults import recorded_settle_waits, script_faults
from support.harness import make_harness, writes


def devices_of(store, identifier: str) -> list[dict]:
    company_id = company(store, identifier)["id"]
    return [c for c in store["configurations"].values() if c["company"]["id"] == company_id]


def device(store, name: str) -> dict:
    return next(c for c in store["configurations"].values() if c["name"] == name)


async def call(harness, tool: str, **arguments):
    async with harness.client() as client:
        return await client.call_tool(tool, arguments)


def add_device(harness, **fields) -> dict:
    """A configuration put straight into the sandbox's store, as someone else made it in ConnectWise."""
    store = harness.store()
    acme = store.ref("companies", company(store, "ACME")["id"])
    record = {
        "id": store.next_id("configurations"),
        "type": store.ref("configurationTypes", 2),
        "status": store.ref("configurationStatuses", 1),
        "company": acme,
        "activeFlag": True,
        "_info": {"lastUpdated": "2026-01-01T00:00:00Z", "dateEntered": "2026-01-01T00:00:00Z"},
        **fields,
    }
    store.put("configurations", record)
    return record


# --- search_configurations ---------------------------------------------------------------------------------


async def test_search_by_company_type_and_texts(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    workstations = sorted(
        (c for c in devices_of(store, "ACME") if c["type"]["name"] == "Managed Workstation"), key=lambda c: c["name"]
    )
    found = await call(harness, "search_configurations", company="acme", type="managed workstation")
    rows = found.structured_content["configurations"]
    assert [row["id"] for row in rows] == [c["id"] for c in workstations]
    assert rows[0] == {
        "id": workstations[0]["id"],
        "name": workstations[0]["name"],
        "type": "Managed Workstation",
        "status": "Active",
        "company": "ACME",
        "serial_number": workstations[0]["serialNumber"],
        "ip_address": workstations[0]["ipAddress"],
    }
    [request] = [r for r in harness.requests() if r["path"] == "/company/configurations"]
    assert request["query"]["conditions"] == (
        f"company/id = {company(store, 'ACME')['id']} and type/id = 2 and activeFlag = true"
    )
    by_serial = await call(harness, "search_configurations", serial_number=workstations[1]["serialNumber"].lower())
    assert [row["id"] for row in by_serial.structured_content["configurations"]] == [workstations[1]["id"]]
    by_part = await call(harness, "search_configurations", name="ws-0", company="ACME")
    assert {row["name"] for row in by_part.structured_content["configurations"]} == {"ACME-WS-014", "ACME-WS-027"}
    by_ip = await call(harness, "search_configurations", ip_address=workstations[0]["ipAddress"])
    assert [row["id"] for row in by_ip.structured_content["configurations"]] == [workstations[0]["id"]]


async def test_a_mac_address_matches_however_it_is_punctuated(tmp_path):
    harness = make_harness(tmp_path)
    colons = add_device(harness, name="ACME-LT-001", macAddress="00:1A:2B:3C:4D:5E")
    bare = add_device(harness, name="ACME-LT-002", macAddress="001a2b3c4d5f")
    for spelled, expected in (("00-1a-2b-3c-4d-5e", colons), ("001A.2B3C.4D5F", bare), ("001a2b3c4d5e", colons)):
        found = await call(harness, "search_configurations", mac_address=spelled)
        assert [row["id"] for row in found.structured_content["configurations"]] == [expected["id"]], spelled


async def test_inactive_configurations_only_when_asked_and_pages(tmp_path):
    harness = make_harness(tmp_path)
    retired = add_device(
        harness, name="ACME-OLD-1", activeFlag=False, status=harness.store().ref("configurationStatuses", 2)
    )
    active = await call(harness, "search_configurations", name="ACME-OLD")
    assert active.structured_content["configurations"] == []
    assert "active_only=false" in active.structured_content["next_steps"]
    every = await call(harness, "search_configurations", name="ACME-OLD", active_only=False, status="inactive")
    [row] = every.structured_content["configurations"]
    assert (row["id"], row["inactive"], row["status"]) == (retired["id"], True, "Inactive")
    first = await call(harness, "search_configurations", company="ACME", limit=2)
    assert first.structured_content["has_more"] is True and first.structured_content["next_page"] == 2
    assert "page=2" in first.structured_content["next_steps"]


@pytest.mark.parametrize(
    ("arguments", "phrase"),
    [
        ({"type": "Toaster"}, "There is no configuration type 'Toaster' in tenant acme; types: Managed Server, "),
        ({"status": "Broken"}, "There is no configuration status 'Broken' in tenant acme; statuses: Active, Inactive."),
        ({"company": "Acmee Rockets"}, "closest names: Acme Rocket Supplies (ACME)"),
        (
            {"name": "x" * 251},
            "name is 251 characters long; search text can have at most 250 (longer matches nothing), so shorten it.",
        ),
        ({"name": "a\"b'c"}, "both a double quote"),
    ],
)
async def test_a_search_that_can_match_nothing_is_refused_with_what_there_is(tmp_path, arguments, phrase):
    harness = make_harness(tmp_path)
    result = await call(harness, "search_configurations", **arguments)
    assert result.is_error is True and phrase in result.content[0].text, result.content[0].text
    assert not [r for r in harness.requests() if r["path"] == "/company/configurations"]


# --- get_configuration -------------------------------------------------------------------------------------


async def test_a_configuration_with_the_open_tickets_it_is_on(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    firewall = device(store, "ACME-FW01")
    acme = company(store, "ACME")["id"]
    open_tickets = [t for t in store["tickets"].values() if t["company"]["id"] == acme and not t["closedFlag"]]
    on_it = sorted(
        (t["id"] for t in open_tickets if firewall["id"] in store.ticket_configurations.get(t["id"], ())), reverse=True
    )
    assert on_it  # the seed attaches it to an open ticket
    for value in (firewall["id"], "acme-fw01", firewall["serialNumber"]):
        result = await call(harness, "get_configuration", configuration=value)
        details = result.structured_content
        assert [t["id"] for t in details["open_tickets"]] == on_it, value
        assert details["open_tickets_checked"] == len(open_tickets) and details["more_open_tickets"] is False
        assert (details["id"], details["name"], details["company_identifier"], details["serial_number"]) == (
            firewall["id"],
            "ACME-FW01",
            "ACME",
            firewall["serialNumber"],
        )
    ticket = store["tickets"][on_it[0]]
    assert details["open_tickets"][0] == {
        "id": ticket["id"],
        "summary": ticket["summary"],
        "board": ticket["board"]["name"],
        "status": ticket["status"]["name"],
    }
    counts = [r for r in harness.requests() if r["path"].endswith("/configurations/count")]
    assert len(counts) == 3 * len(open_tickets)  # one per open ticket of the company, per call


async def test_a_name_two_companies_use_is_refused_with_both_unless_company_narrows_it(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    smith = store.ref("companies", company(store, "SmithJones")["id"])
    twin = add_device(harness, name="SHARED-NAS", serialNumber="SN-A")
    other = add_device(harness, name="shared-nas", serialNumber="SN-B", company=smith)
    refused = await call(harness, "get_configuration", configuration="Shared-NAS")
    text = refused.content[0].text
    assert refused.is_error and "'Shared-NAS' matches 2 configurations in tenant acme" in text
    assert f"SHARED-NAS (id {twin['id']}, serial SN-A) of Acme Rocket Supplies" in text and "give company" in text
    narrowed = await call(harness, "get_configuration", configuration="Shared-NAS", company="SmithJones")
    assert narrowed.structured_content["id"] == other["id"]
    unknown = await call(harness, "get_configuration", configuration="NO-SUCH-BOX")
    assert unknown.is_error and unknown.content[0].text.endswith("Use search_configurations to find the configuration.")


async def test_a_configuration_named_by_company_and_id_is_read_once(tmp_path):
    harness = make_harness(tmp_path)
    firewall = device(harness.store(), "ACME-FW01")
    result = await call(harness, "get_configuration", configuration=firewall["id"], company="ACME")
    assert result.structured_content["serial_number"] == firewall["serialNumber"]
    reads = [r for r in harness.requests() if r["path"].endswith(f"/company/configurations/{firewall['id']}")]
    assert len(reads) == 1


async def test_device_texts_are_marked_untrusted(tmp_path):
    harness = make_harness(tmp_path)
    async with harness.client() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    details = tools["get_configuration"].output_schema["properties"]
    for field in ("name", "notes", "last_login_name", "os_info", "serial_number", "company"):
        assert details[field][UNTRUSTED_MARK] is True, field
    assert UNTRUSTED_MARK not in details["type"] and UNTRUSTED_MARK not in details["company_identifier"]
    synced = tools["sync_configurations"].output_schema["properties"]["devices"]["items"]["properties"]
    assert synced["name"][UNTRUSTED_MARK] is True and synced["reason"][UNTRUSTED_MARK] is True


# --- upsert_configuration ----------------------------------------------------------------------------------

NEW = {
    "company": "ACME",
    "name": "ACME-WS-031",
    "type": "Managed Workstation",
    "serial_number": "5CG2031XQZ",
    "model_number": "EliteBook 840",
    "manufacturer": "HP",
    "ip_address": "10.2.0.31",
    "mac_address": "00:1A:2B:3C:4D:31",
    "os_type": "Windows 11 Pro",
    "os_info": "23H2 build 22631",
    "last_login_name": "ACME\\bjorn",
    "notes": "Imaged by the RMM.\nAsset tag 4471.",
    "status": "active",
}


async def test_a_new_device_is_created_then_unchanged_then_only_what_differs_is_patched(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    created = await call(harness, "upsert_configuration", **NEW)
    answer = created.structured_content
    record = store["configurations"][answer["configuration_id"]]
    assert (answer["outcome"], answer["company_identifier"], "matched_by" in answer) == ("created", "ACME", False)
    [post] = writes(harness.requests())
    assert post["json"] == {
        "company": {"id": company(store, "ACME")["id"]},
        "name": "ACME-WS-031",
        "serialNumber": "5CG2031XQZ",
        "modelNumber": "EliteBook 840",
        "ipAddress": "10.2.0.31",
        "macAddress": "00:1A:2B:3C:4D:31",
        "osType": "Windows 11 Pro",
        "osInfo": "23H2 build 22631",
        "lastLoginName": "ACME\\bjorn",
        "notes": "Imaged by the RMM.\nAsset tag 4471.",
        "manufacturer": {"name": "HP"},
        "type": {"id": 2},
        "status": {"id": 1},
    }
    assert (record["type"]["name"], record["status"]["name"], record["manufacturer"]) == (
        "Managed Workstation",
        "Active",
        {"name": "HP"},
    )
    # The same report again, a MAC written another way and the serial number in another case: nothing to send.
    same = await call(
        harness, "upsert_configuration", **NEW | {"mac_address": "001a2b3c4d31", "serial_number": "5cg2031xqz"}
    )
    assert same.structured_content["outcome"] == "unchanged" and len(writes(harness.requests())) == 1
    assert same.structured_content["matched_by"] == "serial_number"
    assert "nothing was sent" in same.structured_content["next_steps"]
    moved = await call(
        harness, "upsert_configuration", **NEW | {"ip_address": "10.2.0.77", "last_login_name": "ACME\\zoe"}
    )
    assert moved.structured_content["outcome"] == "updated"
    assert moved.structured_content["changes"] == [
        {"field": "ip_address", "before": "10.2.0.31", "after": "10.2.0.77"},
        {"field": "last_login_name", "before": "ACME\\bjorn", "after": "ACME\\zoe"},
    ]
    patch = writes(harness.requests())[-1]
    assert (patch["method"], patch["path"]) == ("PATCH", f"/company/configurations/{record['id']}")
    assert patch["json"] == [
        {"op": "replace", "path": "ipAddress", "value": "10.2.0.77"},
        {"op": "replace", "path": "lastLoginName", "value": "ACME\\zoe"},
    ]
    assert store["configurations"][record["id"]]["ipAddress"] == "10.2.0.77"
    assert [line["written"] for line in harness.audit()] == [
        [{"record": "configuration", "id": record["id"], "outcome": "created"}],
        [],
        [{"record": "configuration", "id": record["id"], "outcome": "updated"}],
    ]


async def test_a_serial_number_match_wins_over_the_name_and_renames(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    workstation = device(store, "ACME-WS-014")
    result = await call(
        harness,
        "upsert_configuration",
        company="ACME",
        name="ACME-WS-027",  # another device's name: the serial number decides
        type="Managed Workstation",
        serial_number=workstation["serialNumber"],
    )
    answer = result.structured_content
    assert (answer["outcome"], answer["configuration_id"], answer["matched_by"]) == (
        "updated",
        workstation["id"],
        "serial_number",
    )
    assert answer["changes"] == [{"field": "name", "before": "ACME-WS-014", "after": "ACME-WS-027"}]


async def test_without_a_serial_number_match_the_name_matches_in_any_case(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    server = device(store, "ACME-DC01")
    before = len(devices_of(store, "ACME"))
    result = await call(
        harness,
        "upsert_configuration",
        company="ACME",
        name="acme-dc01",
        type="Managed Server",
        serial_number="NEW-BOARD-1",
        ip_address=server["ipAddress"],
    )
    answer = result.structured_content
    assert (answer["configuration_id"], answer["matched_by"]) == (server["id"], "name")
    assert answer["changes"] == [{"field": "serial_number", "before": server["serialNumber"], "after": "NEW-BOARD-1"}]
    assert store["configurations"][server["id"]]["name"] == "ACME-DC01"  # the same name in another case: kept
    assert store["configurations"][server["id"]]["serialNumber"] == "NEW-BOARD-1"
    assert len(devices_of(store, "ACME")) == before  # nothing created


async def test_two_configurations_with_one_serial_number_are_refused_with_both(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    first = add_device(harness, name="ACME-LT-101", serialNumber="DUP-SERIAL")
    second = add_device(harness, name="ACME-LT-102", serialNumber="dup-serial")
    before = len(store["configurations"])
    result = await call(
        harness,
        "upsert_configuration",
        company="ACME",
        name="ACME-LT-101",
        type="Managed Workstation",
        serial_number="Dup-Serial",
        ip_address="10.2.0.101",
    )
    text = result.content[0].text
    assert result.is_error and "2 configurations of company Acme Rocket Supplies (ACME) have the serial number" in text
    assert f"ACME-LT-101 (id {first['id']}, serial DUP-SERIAL)" in text
    assert f"ACME-LT-102 (id {second['id']}, serial dup-serial)" in text and "nothing was written" in text
    assert writes(harness.requests()) == [] and len(store["configurations"]) == before
    add_device(harness, name="acme-lt-101")  # a second record with that name, without a serial number
    by_name = await call(harness, "upsert_configuration", company="ACME", name="ACME-LT-101", type="Printer")
    assert by_name.is_error and "2 configurations of company Acme Rocket Supplies (ACME) have the name" in (
        by_name.content[0].text
    )
    assert writes(harness.requests()) == []


@pytest.mark.parametrize(
    ("arguments", "phrase", "requests"),
    [
        ({"type": "Toaster"}, "There is no active configuration type 'Toaster'", True),
        ({"status": "Broken"}, "There is no configuration status 'Broken'", True),
        ({"contact": "Nobody Here"}, "has no active contact 'Nobody Here'", True),
        ({"name": "   "}, "name is empty", False),
        ({"mac_address": "0" * 26}, "mac_address is 26 characters long; ConnectWise holds at most 25", False),
        ({"os_info": "bell\x07"}, "os_info contains the control character U+0007", False),
        ({"type": True}, "type must be a number or a name, not true or false", False),
        ({"serial_number": "a\"b'c"}, "serial_number cannot be looked for in ConnectWise: Search text cannot", False),
    ],
)
async def test_an_upsert_is_refused_before_anything_is_written(tmp_path, arguments, phrase, requests):
    harness = make_harness(tmp_path)
    result = await call(harness, "upsert_configuration", **NEW | arguments)
    assert result.is_error and phrase in result.content[0].text, result.content[0].text
    assert writes(harness.requests()) == [] and bool(harness.requests()) is requests


async def test_a_contact_is_given_by_email(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    acme = company(store, "ACME")["id"]
    person = [c for c in store["contacts"].values() if c["company"]["id"] == acme][1]
    email = next(i["value"] for i in person["communicationItems"] if i["communicationType"] == "Email")
    result = await call(harness, "upsert_configuration", **NEW | {"contact": email})
    assert store["configurations"][result.structured_content["configuration_id"]]["contact"]["id"] == person["id"]


async def test_a_post_whose_answer_is_lost_is_found_not_sent_again(tmp_path, monkeypatch):
    waits = recorded_settle_waits(monkeypatch)
    harness = make_harness(tmp_path)
    store = harness.store()
    script_faults(harness.sandboxes["acme"], post=["drop_after_commit"])
    result = await call(harness, "upsert_configuration", **NEW)
    answer = result.structured_content
    made = [c for c in store["configurations"].values() if c["name"] == NEW["name"]]
    assert [c["id"] for c in made] == [answer["configuration_id"]] and answer["outcome"] == "created"
    assert [r["method"] for r in writes(harness.requests())] == ["POST"] and waits  # looked for, after settling
    again = await call(harness, "upsert_configuration", **NEW)  # the RMM retries anyway
    assert again.structured_content["outcome"] == "unchanged" and len(writes(harness.requests())) == 1


async def test_a_patch_whose_answer_is_lost_is_read_back(tmp_path, monkeypatch):
    recorded_settle_waits(monkeypatch)
    harness = make_harness(tmp_path)
    store = harness.store()
    workstation = device(store, "ACME-WS-027")
    # A PATCH is idempotent, so the client sends it again itself; both answers are lost here.
    script_faults(harness.sandboxes["acme"], patch=["drop_after_commit"] * 4)
    result = await call(
        harness,
        "upsert_configuration",
        company="ACME",
        name="ACME-WS-027",
        type="Managed Workstation",
        ip_address="10.2.0.200",
    )
    assert result.structured_content["outcome"] == "updated", result.content[0].text
    assert store["configurations"][workstation["id"]]["ipAddress"] == "10.2.0.200"
    reads_after = [r for r in harness.requests() if r["path"] == f"/company/configurations/{workstation['id']}"]
    assert [r["method"] for r in reads_after][-1] == "GET"  # read back
