"""The sandbox's surface: auth, companyinfo, every endpoint's methods and status codes, ConnectWise's 404s."""

from __future__ import annotations

import base64

import httpx2
import pytest

from mcp_server_connectwise.sandbox import SANDBOX_BASE_URL, SandboxSettings, create_app
from mcp_server_connectwise.sandbox.seed_text import INACTIVE_MEMBER

from support.sandbox_http import AUTH, sandbox_http


@pytest.fixture
def app():
    return create_app(SandboxSettings(tickets=60))


@pytest.fixture
async def client(app):
    async with sandbox_http(app, "test-client") as client:
        yield client


LIST_PATHS = [
    "/service/tickets",
    "/service/boards",
    "/service/boards/1/statuses",
    "/service/boards/1/types",
    "/service/boards/1/subtypes",
    "/service/boards/1/items",
    "/service/priorities",
    "/service/sources",
    "/service/tickets/1001/notes",
    "/service/tickets/1001/allNotes",
    "/time/entries",
    "/time/workTypes",
    "/time/workRoles",
    "/company/companies",
    "/company/contacts",
    "/company/configurations",
    "/finance/agreements",
    "/system/members",
    "/system/callbacks",
]


async def test_wrong_keys_get_401_with_connectwise_body(client):
    for auth in [
        ("sandbox+sandbox-public", "wrong"),
        ("other+sandbox-public", "sandbox-private"),
        ("sandbox-public", "sandbox-private"),
    ]:
        response = await client.get("/system/info", auth=auth)
        assert response.status_code == 401
        assert response.json() == {"code": "ConnectWiseApi", "message": "UserNotAuthenticated"}
    response = await client.get("/system/info", auth=None)
    assert response.status_code == 401


async def test_company_id_is_case_insensitive_and_info_answers(client):
    response = await client.get("/system/info", auth=("SANDBOX+sandbox-public", "sandbox-private"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"version", "isCloud", "serverTimeZone", "licenseBits", "cloudRegion"}
    assert response.headers["content-type"].startswith("application/json")


async def test_configured_credentials_are_used():
    app = create_app(SandboxSettings(tickets=5, company="acme", public_key="pub", private_key="priv"))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=SANDBOX_BASE_URL) as client:
        assert (await client.get("/system/info", auth=("acme+pub", "priv"))).status_code == 200
        assert (await client.get("/system/info", auth=AUTH)).status_code == 401
        info = await client.get("http://127.0.0.1/login/companyinfo/acme")
        assert info.json()["CompanyID"] == "acme"


async def test_companyinfo_without_auth(client):
    response = await client.get("http://127.0.0.1/login/companyinfo/sandbox", auth=None)
    assert response.status_code == 200
    body = response.json()
    assert body["Codebase"] == "v4_6_release/"
    assert body["CompanyID"] == "sandbox"
    assert set(body) >= {"CompanyName", "Codebase", "VersionCode", "VersionNumber", "CompanyID", "IsCloud"}
    unknown = await client.get("http://127.0.0.1/login/companyinfo/nobody", auth=None)
    assert unknown.headers["content-type"].startswith("text/plain")
    assert unknown.text == "Cannot route. Codebase/company is invalid"


async def test_unknown_paths_and_ids(client):
    for path in ["/service/nothing", "/service/tickets/abc", "/nope/nope"]:
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json() == {"code": "ConnectWiseApi", "message": "The endpoint does not exist."}
    response = await client.get("/service/tickets/123")
    assert response.status_code == 404
    assert response.json() == {"code": "NotFound", "message": "Ticket 123 not found"}
    assert (await client.get("/company/contacts/57919")).json() == {
        "code": "NotFound",
        "message": "Contact 57919 not found",
    }
    assert (await client.get("/service/tickets/123/notes")).json()["message"] == "Ticket 123 not found"


@pytest.mark.parametrize("path", LIST_PATHS)
async def test_every_list_endpoint_lists_counts_and_gets_items(client, path):
    response = await client.get(path, params={"pageSize": 1000})
    assert response.status_code == 200, response.text
    records = response.json()
    assert records, f"{path} seeded empty"
    if path.endswith("allNotes"):
        return  # allNotes has no /count or /{id}
    count = await client.get(path + "/count")
    assert count.json() == {"count": len(records)}
    one = await client.get(f"{path}/{records[-1]['id']}")
    assert one.status_code == 200
    assert one.json() == records[-1]


async def test_methods_and_status_codes(client):
    created = await client.post(
        "/company/contacts", json={"firstName": "Ada", "lastName": "Lovelace", "company": {"identifier": "ACME"}}
    )
    assert created.status_code == 201
    contact_id = created.json()["id"]
    assert (await client.put(f"/company/contacts/{contact_id}", json={"firstName": "Ada"})).status_code == 200
    assert "company" not in (await client.get(f"/company/contacts/{contact_id}")).json()  # PUT resets
    deleted = await client.delete(f"/company/contacts/{contact_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get(f"/company/contacts/{contact_id}")).status_code == 404
    refused = await client.delete("/system/members/2")
    assert refused.status_code == 405
    assert refused.json()["code"] == "ConnectWiseApi"


async def test_request_log_records_each_request_without_the_private_key(app, client):
    await client.get("/service/tickets", params={"conditions": "id=1001"})
    await client.patch("/service/tickets/1001", json=[{"op": "replace", "path": "summary", "value": "x"}])
    await client.get("/system/info", auth=("sandbox+sandbox-public", "wrong"))
    log = app.state.request_log
    assert [e["method"] for e in log] == ["GET", "PATCH", "GET"]
    assert log[0]["path"] == "/service/tickets" and log[0]["query"] == {"conditions": "id=1001"}
    assert log[1]["json"] == [{"op": "replace", "path": "summary", "value": "x"}]
    assert [e["status"] for e in log] == [200, 200, 401]
    assert all(e["principal"] == "sandbox+sandbox-public" and e["client_id"] == "test-client" for e in log)
    assert "sandbox-private" not in repr(log) and "wrong" not in repr(log)


async def test_request_log_keeps_at_most_its_limit_newest_last():
    app = create_app(SandboxSettings(tickets=60, request_log_limit=10))
    async with sandbox_http(app, "test-client") as client:
        sizes = []
        for ticket in range(1001, 1041):
            await client.get(f"/service/tickets/{ticket}")
            sizes.append(len(app.state.request_log))
    log = app.state.request_log
    assert max(sizes) == 10 and 0 < len(log) <= 10
    assert log[-1]["path"] == "/service/tickets/1040" and log[-1]["status"] == 200
    paths = [e["path"] for e in log]
    assert paths == [f"/service/tickets/{t}" for t in range(1041 - len(log), 1041)]  # the newest, in order
    assert log[-3:] == list(log)[-3:] and isinstance(log, list)  # still a list: tests slice and compare it
    with pytest.raises(ValueError):
        create_app(SandboxSettings(request_log_limit=0))


async def test_impersonation_tokens_act_as_the_member(client, app):
    response = await client.post("/system/members/jsmith/tokens")
    assert response.status_code == 200
    keys = response.json()
    assert set(keys) == {"publicKey", "privateKey", "expiration"}
    auth = (f"sandbox+{keys['publicKey']}", keys["privateKey"])
    patched = await client.patch(
        "/service/tickets/1001", auth=auth, json=[{"op": "replace", "path": "summary", "value": "Renamed"}]
    )
    assert patched.json()["_info"]["updatedBy"] == "jsmith"
    ticket = await client.post(
        "/service/tickets",
        auth=auth,
        json={"summary": "As jsmith", "company": {"identifier": "ACME"}, "board": {"name": "Service Desk"}},
    )
    assert ticket.json()["_info"]["enteredBy"] == "jsmith"
    entry = await client.post(
        "/time/entries",
        auth=auth,
        json={
            "chargeToId": ticket.json()["id"],
            "chargeToType": "ServiceTicket",
            "timeStart": "2026-11-02T09:00:00Z",
            "timeEnd": "2026-11-02T09:30:00Z",
        },
    )
    assert entry.status_code == 201, entry.text
    assert (entry.json()["enteredBy"], entry.json()["member"]["identifier"]) == ("jsmith", "jsmith")
    assert (await client.post("/system/members/nobody/tokens")).status_code == 404


async def test_impersonation_keys_expire_and_cannot_make_more_keys():
    app = create_app(SandboxSettings(tickets=60, token_lifetime_seconds=0))
    async with sandbox_http(app) as client:
        keys = (await client.post("/system/members/JSmith/tokens")).json()  # identifiers in any case
        auth = (f"sandbox+{keys['publicKey']}", keys["privateKey"])
        expired = await client.get("/system/info", auth=auth)
    assert expired.status_code == 401 and expired.json()["message"] == "UserNotAuthenticated"
    app = create_app(SandboxSettings(tickets=60))
    async with sandbox_http(app) as client:
        keys = (await client.post("/system/members/jsmith/tokens")).json()
        auth = (f"sandbox+{keys['publicKey']}", keys["privateKey"])
        more = await client.post("/system/members/mgarcia/tokens", auth=auth)
        inactive = await client.post(f"/system/members/{INACTIVE_MEMBER}/tokens")
    assert more.status_code == 403 and more.json()["code"] == "Security"
    assert inactive.status_code == 400 and inactive.json()["errors"][0]["field"] == "inactiveFlag"


async def test_raw_basic_header_and_malformed_json(client):
    token = base64.b64encode(b"sandbox+sandbox-public:sandbox-private").decode()
    response = await client.get("/system/info", auth=None, headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 200
    bad = await client.post("/service/tickets", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
