"""Writes: defaults on create, PATCH/PUT/DELETE semantics, every validation error, closing, time entries."""

from __future__ import annotations

import pytest

from mcp_server_connectwise.sandbox import SandboxSettings, create_app

from support.sandbox_http import sandbox_http

NEW_TICKET = {"summary": "Printer jammed", "company": {"identifier": "ACME"}, "board": {"name": "Service Desk"}}


@pytest.fixture
def app():
    return create_app(SandboxSettings(tickets=80))


@pytest.fixture
async def client(app):
    async with sandbox_http(app) as client:
        yield client


def status_id(app, board: str, name: str) -> int:
    return next(
        s["id"] for s in app.state.store["statuses"].values() if s["board"]["name"] == board and s["name"] == name
    )


def field_errors(response) -> list[tuple[str, str]]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "InvalidObject"
    return [(e["code"], e["field"]) for e in body["errors"]]


async def test_post_ticket_fills_defaults(app, client):
    response = await client.post("/service/tickets", json={**NEW_TICKET, "initialDescription": "It jams on A4."})
    assert response.status_code == 201
    ticket = response.json()
    assert ticket["status"]["name"] == "New" and ticket["status"]["id"] == status_id(app, "Service Desk", "New")
    assert ticket["company"]["name"] == "Acme Rocket Supplies"
    assert ticket["priority"]["name"] == "Priority 3 - Normal Response"
    assert ticket["recordType"] == "ServiceTicket" and ticket["closedFlag"] is False
    assert {"lastUpdated", "updatedBy", "dateEntered", "enteredBy"} <= set(ticket["_info"])
    assert ticket["_info"]["enteredBy"] == "api-bot"
    assert "initialDescription" not in ticket
    notes = (await client.get(f"/service/tickets/{ticket['id']}/notes")).json()
    assert [(n["text"], n["detailDescriptionFlag"]) for n in notes] == [("It jams on A4.", True)]
    assert app.state.store["tickets"][ticket["id"]] == ticket


async def test_post_ticket_validation(client):
    errors = field_errors(
        await client.post("/service/tickets", json={"summary": "x" * 101, "company": {"id": 2}, "board": {"id": 1}})
    )
    assert errors == [("InvalidField", "summary")]
    errors = field_errors(await client.post("/service/tickets", json={"summary": "no company or board"}))
    assert ("MissingRequiredField", "company") in errors and ("MissingRequiredField", "board") in errors
    errors = field_errors(await client.post("/service/tickets", json={**NEW_TICKET, "company": {"id": 99999}}))
    assert errors == [("NotFound", "company")]
    assert field_errors(await client.post("/service/tickets", json={"company": {"id": 2}, "board": {"id": 1}})) == [
        ("MissingRequiredField", "summary")
    ]
    errors = field_errors(await client.post("/service/tickets", json={**NEW_TICKET, "externalXRef": "k" * 101}))
    assert errors == [("InvalidField", "externalXRef")]


async def test_post_ticket_keeps_what_integrations_set(client):
    body = {**NEW_TICKET, "externalXRef": "nagios:disk-c:srv01", "integratorTags": ["alerts", "nagios"]}
    ticket = (await client.post("/service/tickets", json=body)).json()
    stored = (await client.get(f"/service/tickets/{ticket['id']}")).json()
    assert (stored["externalXRef"], stored["integratorTags"]) == ("nagios:disk-c:srv01", ["alerts", "nagios"])
    found = await client.get("/service/tickets", params={"conditions": 'externalXRef = "nagios:disk-c:srv01"'})
    assert [t["id"] for t in found.json()] == [ticket["id"]]


async def test_status_must_be_on_the_tickets_board(app, client):
    alerts_closed = status_id(app, "Alerts", "Closed")
    errors = field_errors(await client.post("/service/tickets", json={**NEW_TICKET, "status": {"id": alerts_closed}}))
    assert errors == [("InvalidField", "status")]
    ticket = (await client.post("/service/tickets", json=NEW_TICKET)).json()
    response = await client.patch(
        f"/service/tickets/{ticket['id']}", json=[{"op": "replace", "path": "status", "value": {"id": alerts_closed}}]
    )
    assert field_errors(response) == [("InvalidField", "status")]
    # The same status is fine once the same PATCH moves the ticket to its board (order of operations is free).
    response = await client.patch(
        f"/service/tickets/{ticket['id']}",
        json=[
            {"op": "replace", "path": "status", "value": {"id": alerts_closed}},
            {"op": "replace", "path": "board", "value": {"name": "Alerts"}},
        ],
    )
    assert response.status_code == 200
    assert response.json()["status"]["id"] == alerts_closed and response.json()["closedFlag"] is True
    # By name, a status resolves on the ticket's board.
    response = await client.patch(
        f"/service/tickets/{ticket['id']}",
        json=[{"op": "replace", "path": "status", "value": {"name": "Investigating"}}],
    )
    assert response.json()["status"]["id"] == status_id(app, "Alerts", "Investigating")


async def test_closing_and_reopening(app, client):
    ticket = (await client.post("/service/tickets", json=NEW_TICKET)).json()
    closed = (
        await client.patch(
            f"/service/tickets/{ticket['id']}", json=[{"op": "replace", "path": "status", "value": {"name": ">Closed"}}]
        )
    ).json()
    assert closed["closedFlag"] is True and closed["closedBy"] == "api-bot" and closed["closedDate"]
    reopened = (
        await client.patch(
            f"/service/tickets/{ticket['id']}",
            json=[{"op": "replace", "path": "status", "value": {"name": "In Progress"}}],
        )
    ).json()
    assert reopened["closedFlag"] is False and "closedDate" not in reopened and "closedBy" not in reopened
    by_flag = (
        await client.patch(
            f"/service/tickets/{ticket['id']}", json=[{"op": "replace", "path": "closedFlag", "value": True}]
        )
    ).json()
    assert by_flag["closedFlag"] is True
    assert app.state.store["statuses"][by_flag["status"]["id"]]["closedStatus"] is True


async def test_patch_semantics(app, client):
    before = dict(app.state.store["tickets"][1001])
    # The documented trap: a nested path answers 200 and changes nothing.
    response = await client.patch(
        "/service/tickets/1001", json=[{"op": "replace", "path": "company/identifier", "value": "ACME"}]
    )
    assert response.status_code == 200
    assert response.json()["company"] == before["company"]
    # Whole reference objects by natural key; leading "/" accepted; remove drops the field.
    response = await client.patch(
        "/service/tickets/1001",
        json=[
            {"op": "replace", "path": "/company", "value": {"identifier": "OBrienDental"}},
            {"op": "replace", "path": "owner", "value": {"identifier": "mgarcia"}},
            {"op": "remove", "path": "subType"},
            {"op": "replace", "path": "summary", "value": "Renamed"},
        ],
    )
    ticket = response.json()
    assert ticket["company"]["name"] == "O'Brien Family Dental"
    assert ticket["owner"]["identifier"] == "mgarcia" and "subType" not in ticket and ticket["summary"] == "Renamed"
    assert ticket["_info"]["lastUpdated"] >= before["_info"]["lastUpdated"]
    # Field names in paths are case-sensitive.
    assert field_errors(
        await client.patch("/service/tickets/1001", json=[{"op": "replace", "path": "Summary", "value": "x"}])
    ) == [("InvalidField", "Summary")]
    assert field_errors(
        await client.patch("/service/tickets/1001", json=[{"op": "replace", "path": "summary", "value": "y" * 101}])
    ) == [("InvalidField", "summary")]
    assert (await client.patch("/service/tickets/1001", json={"summary": "not a patch"})).status_code == 400
    assert (await client.patch("/service/tickets/5", json=[])).status_code == 404


async def test_rename_shows_in_every_reference(app, client):
    await client.patch("/service/boards/1", json=[{"op": "replace", "path": "name", "value": "Help Desk"}])
    first = next(t for t in app.state.store["tickets"].values() if t["board"]["id"] == 1)
    assert (await client.get(f"/service/tickets/{first['id']}")).json()["board"]["name"] == "Help Desk"


async def test_put_replaces_the_record(client):
    ticket = (
        await client.post(
            "/service/tickets", json={**NEW_TICKET, "severity": "High", "contact": {"name": "José Álvarez"}}
        )
    ).json()
    replaced = await client.put(f"/service/tickets/{ticket['id']}", json=NEW_TICKET | {"summary": "Replaced"})
    assert replaced.status_code == 200
    body = replaced.json()
    assert body["summary"] == "Replaced" and "contact" not in body and body["id"] == ticket["id"]
    assert body["_info"]["dateEntered"] == ticket["_info"]["dateEntered"]


async def test_delete_ticket_takes_its_notes_and_time(app, client):
    store = app.state.store
    ticket_id = next(e["chargeToId"] for e in store["timeEntries"].values())
    assert (await client.delete(f"/service/tickets/{ticket_id}")).status_code == 204
    assert (await client.get(f"/service/tickets/{ticket_id}")).status_code == 404
    assert not [n for n in store["notes"].values() if n["ticketId"] == ticket_id]
    assert (await client.get("/time/entries/count", params={"conditions": f"chargeToId={ticket_id}"})).json() == {
        "count": 0
    }


async def test_notes_need_a_section_flag(client):
    errors = field_errors(await client.post("/service/tickets/1001/notes", json={"text": "hello"}))
    assert errors == [("InvalidField", "detailDescriptionFlag")]
    note = await client.post("/service/tickets/1001/notes", json={"text": "internal", "internalAnalysisFlag": True})
    assert note.status_code == 201
    body = note.json()
    assert body["ticketId"] == 1001 and body["internalFlag"] is True and body["member"]["identifier"] == "api-bot"
    assert body["createdBy"] == "api-bot" and body["dateCreated"]
    assert (
        await client.post("/service/tickets/99/notes", json={"text": "x", "resolutionFlag": True})
    ).status_code == 404


async def test_time_entries_compute_hours_and_are_validated(app, client):
    ticket = (await client.post("/service/tickets", json=NEW_TICKET)).json()
    entry = {
        "chargeToId": ticket["id"],
        "chargeToType": "ServiceTicket",
        "timeStart": "2026-11-02T09:00:00Z",
        "timeEnd": "2026-11-02T10:45:00Z",
        "notes": "Cleared the jam",
    }
    created = await client.post("/time/entries", json=entry)
    assert created.status_code == 201
    body = created.json()
    assert body["actualHours"] == 1.75 and body["member"]["identifier"] == "api-bot"
    assert body["company"]["identifier"] == "ACME" and body["ticket"]["id"] == ticket["id"]
    assert (await client.get(f"/service/tickets/{ticket['id']}")).json()["actualHours"] == 1.75
    deducted = await client.post("/time/entries", json={**entry, "hoursDeduct": 0.25})
    assert deducted.json()["actualHours"] == 1.5
    errors = field_errors(await client.post("/time/entries", json={**entry, "timeEnd": "2026-11-02T09:00:00Z"}))
    assert errors == [("InvalidField", "timeEnd")]
    errors = field_errors(await client.post("/time/entries", json={**entry, "chargeToId": 99}))
    assert errors == [("NotFound", "chargeToId")]
    assert field_errors(await client.post("/time/entries", json={"notes": "x"})) == [
        ("MissingRequiredField", "timeStart")
    ]
    # A status with timeEntryNotAllowed refuses time.
    await client.patch(
        f"/service/tickets/{ticket['id']}",
        json=[{"op": "replace", "path": "status", "value": {"name": "Pending Approval"}}],
    )
    assert field_errors(await client.post("/time/entries", json=entry)) == [("InvalidField", "chargeToId")]


async def test_a_time_entry_update_must_carry_billable_option_and_recomputes_hours(app, client):
    entry = next(e for e in app.state.store["timeEntries"].values() if e["status"] == "Open")
    path = f"/time/entries/{entry['id']}"
    end = [{"op": "replace", "path": "timeEnd", "value": "2026-11-02T23:00:00Z"}]
    assert field_errors(await client.patch(path, json=end)) == [("MissingRequiredField", "billableOption")]
    nulled = [*end, {"op": "replace", "path": "billableOption", "value": None}]
    assert field_errors(await client.patch(path, json=nulled)) == [("MissingRequiredField", "billableOption")]
    start = [{"op": "replace", "path": "timeStart", "value": "2026-11-02T21:30:00Z"}]
    billable = [{"op": "replace", "path": "billableOption", "value": "nocharge"}]
    patched = await client.patch(path, json=[*start, *end, *billable])
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["actualHours"], body["billableOption"], body["status"]) == (1.5, "NoCharge", "Open")
    ticket = app.state.store["tickets"][entry["chargeToId"]]
    assert ticket["actualHours"] == round(
        sum(e["actualHours"] for e in app.state.store.children("timeEntries", ticket["id"])), 2
    )
    replaced = {key: value for key, value in body.items() if key not in ("billableOption", "_info")}
    assert field_errors(await client.put(path, json=replaced)) == [("MissingRequiredField", "billableOption")]


@pytest.mark.parametrize("status", ["PendingApproval", "ApprovedByTierOne", "ReadyToBill", "Billed", "BilledAgreement"])
async def test_a_time_entry_in_approval_or_billed_cannot_be_changed(app, client, status):
    entry = next(e for e in app.state.store["timeEntries"].values() if e["status"] == status)
    path = f"/time/entries/{entry['id']}"
    change = [
        {"op": "replace", "path": "notes", "value": "Corrected."},
        {"op": "replace", "path": "billableOption", "value": "Billable"},
    ]
    response = await client.patch(path, json=change)
    assert field_errors(response) == [("InvalidField", "status")]
    assert f"is {status} and can no longer be changed" in response.json()["errors"][0]["message"]
    assert field_errors(await client.put(path, json={**entry, "notes": "Corrected."})) == [("InvalidField", "status")]
    assert app.state.store["timeEntries"][entry["id"]] == entry


async def test_callbacks_validate_like_connectwise(client):
    hook = {"url": "https://example.invalid/hook", "objectId": 1, "type": "ticket", "level": "owner"}
    assert (await client.post("/system/callbacks", json=hook)).status_code == 201
    assert field_errors(await client.post("/system/callbacks", json=hook)) == [("ObjectExists", "objectId")]
    errors = field_errors(await client.post("/system/callbacks", json={**hook, "url": "nope", "level": "galaxy"}))
    assert errors == [("InvalidField", "url"), ("InvalidObject", "level")]


async def test_contact_requires_first_name_as_in_connectwise(client):
    response = await client.post("/company/contacts", json={"lastName": "Only"})
    assert response.json() == {
        "code": "InvalidObject",
        "message": "contact object is invalid",
        "errors": [
            {
                "code": "MissingRequiredField",
                "message": "The firstName field is required.",
                "resource": "contact",
                "field": "firstName",
            }
        ],
    }
