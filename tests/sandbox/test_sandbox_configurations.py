"""/company/configurations with its types and statuses: served, counted, created and patched as ConnectWise does
(required name, type and company; the schema's lengths; references by id or name)."""

from __future__ import annotations

import pytest

from mcp_server_connectwise.sandbox import SandboxSettings, create_app

from support.sandbox_http import sandbox_http

DEVICE = {"name": "ACME-NEW-01", "type": {"id": 2}, "company": {"identifier": "ACME"}}


@pytest.fixture
def app():
    return create_app(SandboxSettings(tickets=50))


@pytest.fixture
async def client(app):
    async with sandbox_http(app) as client:
        yield client


def field_errors(response) -> set[tuple[str, str]]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["code"], body["message"]) == ("InvalidObject", "configuration object is invalid")
    return {(error["code"], error["field"]) for error in body["errors"]}


async def test_types_and_statuses_are_served_and_referenced_with_their_links(app, client):
    types = (await client.get("/company/configurations/types")).json()
    statuses = (await client.get("/company/configurations/statuses")).json()
    assert [t["name"] for t in types] == ["Managed Server", "Managed Workstation", "Firewall", "Printer"]
    assert [(s["description"], s["closedFlag"], s["defaultFlag"]) for s in statuses] == [
        ("Active", False, True),
        ("Inactive", True, False),
    ]
    assert (await client.get("/company/configurations/types/count")).json() == {"count": 4}
    assert (await client.get("/company/configurations/statuses/2")).json()["description"] == "Inactive"
    device = app.state.store["configurations"][1]
    # A status's reference calls its description `name`, as every reference names its record.
    assert device["status"]["name"] == "Active" and device["status"]["_info"]["status_href"].endswith("/statuses/1")
    assert device["type"]["_info"]["type_href"].endswith(f"/configurations/types/{device['type']['id']}")
    # Setting them up is an administrator's job in ConnectWise, not the API member's.
    assert (await client.post("/company/configurations/types", json={"name": "Switch"})).status_code == 405


async def test_a_configuration_needs_a_name_a_type_and_a_company(client):
    assert field_errors(await client.post("/company/configurations", json={})) == {
        ("MissingRequiredField", "name"),
        ("MissingRequiredField", "type"),
        ("MissingRequiredField", "company"),
    }
    unknown = await client.post("/company/configurations", json={**DEVICE, "type": {"name": "Toaster"}})
    assert field_errors(unknown) == {("NotFound", "type")}
    too_long = await client.post(
        "/company/configurations", json={**DEVICE, "name": "x" * 101, "macAddress": "0" * 26, "serialNumber": "s" * 250}
    )
    assert field_errors(too_long) == {("InvalidField", "name"), ("InvalidField", "macAddress")}


async def test_references_by_name_and_the_default_status(client):
    created = await client.post(
        "/company/configurations",
        json={**DEVICE, "type": {"name": "managed workstation"}, "serialNumber": "SN-NEW-01"},
    )
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["type"]["name"] == "Managed Workstation" and record["status"]["name"] == "Active"
    assert record["company"]["identifier"] == "ACME" and record["activeFlag"] is True
    assert record["_info"]["dateEntered"] == record["_info"]["lastUpdated"]
    inactive = await client.patch(
        f"/company/configurations/{record['id']}",
        json=[{"op": "replace", "path": "status", "value": {"name": "Inactive"}}],
    )
    assert inactive.json()["status"]["id"] == 2
    counted = await client.get(
        "/company/configurations/count", params={"conditions": 'company/identifier="ACME" and status/name="Inactive"'}
    )
    assert counted.json() == {"count": 1}
    removed = await client.patch(f"/company/configurations/{record['id']}", json=[{"op": "remove", "path": "name"}])
    assert field_errors(removed) == {("MissingRequiredField", "name")}
