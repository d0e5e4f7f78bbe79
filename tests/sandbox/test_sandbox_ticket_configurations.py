"""/service/tickets/{id}/configurations: the configurations attached to a ticket, as ConnectWise lists, counts,
attaches (POST {"id"} or {"deviceIdentifier"} -> 201) and detaches (DELETE /{configId} -> 204) them."""

from __future__ import annotations

import json
import re

import pytest

from mcp_server_connectwise.sandbox import SANDBOX_BASE_URL, SandboxSettings, create_app

from support.paths import EXAMPLES_DIR
from support.sandbox_http import sandbox_http

ERROR_BODIES = EXAMPLES_DIR / "error_bodies.json"


@pytest.fixture
def app():
    return create_app(SandboxSettings(tickets=200))


@pytest.fixture
async def client(app):
    async with sandbox_http(app) as client:
        yield client


def bare_ticket(app) -> dict:
    store = app.state.store
    return next(t for t in store["tickets"].values() if t["id"] not in store.ticket_configurations)


def company_configurations(app, company_id: int) -> list[dict]:
    return [c for c in app.state.store["configurations"].values() if c["company"]["id"] == company_id]


def test_seed_attaches_the_devices_tickets_are_about(app):
    store = app.state.store
    attached = store.ticket_configurations
    assert 0.1 < len(attached) / len(store["tickets"]) < 0.9
    for ticket_id, configuration_ids in attached.items():
        ticket = store["tickets"][ticket_id]
        assert configuration_ids == sorted(configuration_ids)
        for configuration_id in configuration_ids:
            assert store["configurations"][configuration_id]["company"]["id"] == ticket["company"]["id"]
    alerts = [t for t in store["tickets"].values() if t["board"]["name"] == "Alerts"]
    assert alerts
    for ticket in alerts:  # an alert names its device, and that device is attached
        (configuration_id,) = attached[ticket["id"]]
        assert ticket["summary"].endswith(store["configurations"][configuration_id]["name"])


async def test_list_items_are_configuration_references(app, client):
    ticket_id, (configuration_id, *_rest) = next(iter(app.state.store.ticket_configurations.items()))
    configuration = app.state.store["configurations"][configuration_id]
    response = await client.get(f"/service/tickets/{ticket_id}/configurations")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json()[0] == {
        "id": configuration_id,
        "deviceIdentifier": configuration["deviceIdentifier"],
        "name": configuration["name"],
        "type": configuration["type"],
        "_info": {"configuration_href": f"{SANDBOX_BASE_URL}/company/configurations/{configuration_id}"},
    }
    one = await client.get(f"/service/tickets/{ticket_id}/configurations/{configuration_id}")
    assert one.json() == response.json()[0]
    count = await client.get(f"/service/tickets/{ticket_id}/configurations/count")
    assert count.json() == {"count": len(response.json())}


async def test_attach_list_page_query_and_detach(app, client):
    ticket = bare_ticket(app)
    url = f"/service/tickets/{ticket['id']}/configurations"
    assert (await client.get(url)).json() == []
    assert (await client.get(url + "/count")).json() == {"count": 0}
    devices = company_configurations(app, ticket["company"]["id"])
    assert len(devices) >= 4
    for device in reversed(devices[:2]):
        response = await client.post(url, json={"id": device["id"]})
        assert response.status_code == 201 and response.json()["id"] == device["id"]
    by_device = await client.post(url, json={"deviceIdentifier": devices[2]["deviceIdentifier"].lower()})
    assert by_device.status_code == 201 and by_device.json()["id"] == devices[2]["id"]
    listed = await client.get(url)
    assert [c["id"] for c in listed.json()] == [d["id"] for d in devices[:3]]  # id order
    # Paging with ConnectWise's Link header, and the usual query parameters.
    page = await client.get(url, params={"pageSize": 2})
    assert len(page.json()) == 2
    assert page.headers["Link"] == (
        f'<{SANDBOX_BASE_URL}{url}?pageSize=2&page=2>; rel="next", '
        f'<{SANDBOX_BASE_URL}{url}?pageSize=2&page=2>; rel="last"'
    )
    named = await client.get(url, params={"conditions": f'name = "{devices[1]["name"]}"', "fields": "id,type/name"})
    assert named.json() == [{"id": devices[1]["id"], "type": {"name": devices[1]["type"]["name"]}}]
    ordered = await client.get(url, params={"orderBy": "id desc"})
    assert [c["id"] for c in ordered.json()] == [d["id"] for d in devices[:3]][::-1]
    seen, next_url = [], url + "?pageSize=1"
    while next_url:
        response = await client.get(next_url, headers={"pagination-type": "forward-only"})
        seen += [c["id"] for c in response.json()]
        match = re.search(r"<([^>]*)>", response.headers["Link"])
        next_url = match.group(1) if match else None
    assert seen == [d["id"] for d in devices[:3]]
    assert (await client.get(url + "/count", params={"conditions": "type/name != null"})).json() == {"count": 3}
    # Detach: 204, then gone from the ticket; the configuration itself stays.
    deleted = await client.delete(f"{url}/{devices[0]['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get(f"{url}/{devices[0]['id']}")).json() == {
        "code": "NotFound",
        "message": f"Configuration {devices[0]['id']} not found",
    }
    assert (await client.delete(f"{url}/{devices[0]['id']}")).status_code == 404
    assert (await client.get(f"/company/configurations/{devices[0]['id']}")).status_code == 200
    assert (await client.get(url + "/count")).json() == {"count": 2}


async def test_attach_errors(app, client):
    ticket = bare_ticket(app)
    url = f"/service/tickets/{ticket['id']}/configurations"
    documented = next(
        e["body"]
        for e in json.loads(ERROR_BODIES.read_text(encoding="utf-8"))
        if e["scenario"].startswith("POST /service/tickets/{id}/configurations")
    )
    for body in ({}, {"id": None}, {"deviceIdentifier": ""}, {"name": "DC01"}):
        response = await client.post(url, json=body)
        assert response.status_code == 400 and response.json() == documented
    unknown = await client.post(url, json={"id": 99999})
    assert unknown.status_code == 400
    assert unknown.json()["errors"] == [
        {"code": "NotFound", "message": "Configuration 99999 not found", "resource": "configuration", "field": "id"}
    ]
    unknown = await client.post(url, json={"deviceIdentifier": "NOPE"})
    assert [(e["code"], e["field"]) for e in unknown.json()["errors"]] == [("NotFound", "deviceIdentifier")]
    wrong_type = await client.post(url, json={"id": "7"})
    assert [(e["code"], e["field"]) for e in wrong_type.json()["errors"]] == [("InvalidField", "id")]
    device = company_configurations(app, ticket["company"]["id"])[0]
    assert (await client.post(url, json={"id": device["id"]})).status_code == 201
    twice = await client.post(url, json={"id": device["id"]})
    assert twice.status_code == 409 and twice.json()["code"] == "ObjectExists"
    assert app.state.store.ticket_configurations[ticket["id"]].count(device["id"]) == 1
    for body in ([{"id": 1}], "1"):
        refused = await client.post(url, json=body)
        assert refused.status_code == 400 and refused.json()["code"] == "InvalidObject"
    missing = await client.get("/service/tickets/99/configurations")
    assert missing.status_code == 404 and missing.json() == {"code": "NotFound", "message": "Ticket 99 not found"}
    assert (await client.post("/service/tickets/99/configurations", json={"id": 1})).status_code == 404
    for method in ("PUT", "PATCH"):
        response = await client.request(method, f"{url}/{device['id']}", json=[])
        assert response.status_code == 405 and response.json()["code"] == "ConnectWiseApi"
    assert (await client.put(url, json={})).status_code == 405


async def test_references_follow_the_configuration_and_the_ticket(app, client):
    ticket = bare_ticket(app)
    url = f"/service/tickets/{ticket['id']}/configurations"
    device = company_configurations(app, ticket["company"]["id"])[1]
    await client.post(url, json={"id": device["id"]})
    await client.patch(
        f"/company/configurations/{device['id']}", json=[{"op": "replace", "path": "name", "value": "Renamed-01"}]
    )
    assert (await client.get(url)).json()[0]["name"] == "Renamed-01"
    assert (await client.delete(f"/company/configurations/{device['id']}")).status_code == 204
    assert (await client.get(url)).json() == []
    other = company_configurations(app, ticket["company"]["id"])[2]
    await client.post(url, json={"id": other["id"]})
    assert (await client.delete(f"/service/tickets/{ticket['id']}")).status_code == 204
    assert ticket["id"] not in app.state.store.ticket_configurations
    assert (await client.get(url)).status_code == 404


async def test_the_client_reads_attached_configurations(app):
    """The MCP server's ticket details now get the configurations from the sandbox instead of a 404."""
    from mcp_server_connectwise.connectwise.models import Configuration

    ticket_id, configuration_ids = next(iter(app.state.store.ticket_configurations.items()))
    async with sandbox_http(app) as client:
        items = (await client.get(f"/service/tickets/{ticket_id}/configurations")).json()
    parsed = [Configuration.model_validate(item) for item in items]
    assert [c.id for c in parsed] == configuration_ids and all(c.name and c.type for c in parsed)
