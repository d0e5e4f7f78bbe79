"""List queries: every operator and literal of the conditions grammar, orderBy, fields, both paging styles, /count."""

from __future__ import annotations

import re

import pytest

from mcp_server_connectwise.sandbox import SandboxSettings, create_app

from support.sandbox_http import sandbox_http


@pytest.fixture(scope="module")
def app():
    return create_app(SandboxSettings(tickets=300))


@pytest.fixture
async def client(app):
    async with sandbox_http(app) as client:
        yield client


def tickets(app) -> list[dict]:
    return list(app.state.store["tickets"].values())


async def ids(client, conditions: str, path: str = "/service/tickets", **params) -> list[int]:
    response = await client.get(path, params={"conditions": conditions, "pageSize": 1000, "fields": "id", **params})
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()]


def expected(app, predicate) -> list[int]:
    return [t["id"] for t in tickets(app) if predicate(t)]


async def test_equality_is_case_insensitive_on_text_and_nested_paths(app, client):
    want = expected(app, lambda t: t["status"]["name"] == "New" and t["board"]["name"] == "Service Desk")
    assert want
    assert await ids(client, 'status/name = "new" and BOARD/Name="SERVICE DESK"') == want
    assert await ids(client, "status/name != 'New'") == expected(app, lambda t: t["status"]["name"] != "New")


async def test_numeric_comparisons_and_in(app, client):
    assert await ids(client, "id < 1010") == expected(app, lambda t: t["id"] < 1010)
    assert await ids(client, "id <= 1010 and id >= 1005") == expected(app, lambda t: 1005 <= t["id"] <= 1010)
    assert await ids(client, "id > 1280") == expected(app, lambda t: t["id"] > 1280)
    assert await ids(client, "id in (1001, 1003, 999999)") == expected(app, lambda t: t["id"] in (1001, 1003))
    assert await ids(client, "priority/id not in (3)") == expected(app, lambda t: t["priority"]["id"] != 3)
    assert await ids(client, "actualHours > 1.5") == expected(app, lambda t: t.get("actualHours", 0) > 1.5)
    assert await ids(client, "actualHours >= -0.5") == [t["id"] for t in tickets(app)]


async def test_boolean_null_and_datetime_literals(app, client):
    assert await ids(client, "closedFlag = true") == expected(app, lambda t: t["closedFlag"])
    assert await ids(client, "closedFlag = false") == expected(app, lambda t: not t["closedFlag"])
    assert await ids(client, "owner = null") == expected(app, lambda t: "owner" not in t)
    assert await ids(client, "owner/identifier != null") == expected(app, lambda t: "owner" in t)
    # A comparison with a null field is never true, as in SQL: tickets without an owner match neither.
    assert await ids(client, "owner/identifier != 'jsmith'") == expected(
        app, lambda t: "owner" in t and t["owner"]["identifier"] != "jsmith"
    )
    cutoff = "2026-08-01T00:00:00Z"
    assert await ids(client, f"lastUpdated > [{cutoff}]") == expected(app, lambda t: t["_info"]["lastUpdated"] > cutoff)
    assert await ids(client, f"_info/dateEntered <= [{cutoff}]") == expected(
        app, lambda t: t["_info"]["dateEntered"] <= cutoff
    )
    assert await ids(client, f"dateEntered <= [{cutoff}]") == expected(
        app, lambda t: t["_info"]["dateEntered"] <= cutoff
    )
    assert await ids(client, f"closedDate < [{cutoff}]") == expected(
        app, lambda t: "closedDate" in t and t["closedDate"] < cutoff
    )


async def test_contains_and_like_with_wildcards_and_escapes(app, client):
    assert await ids(client, 'summary contains "vpn"') == expected(app, lambda t: "vpn" in t["summary"].lower())
    assert await ids(client, 'summary not contains "vpn"') == expected(app, lambda t: "vpn" not in t["summary"].lower())
    assert await ids(client, 'summary like "printer%"') == expected(
        app, lambda t: t["summary"].lower().startswith("printer")
    )
    assert await ids(client, "summary like '*LETTER\"'") == expected(app, lambda t: t["summary"].endswith('LETTER"'))
    assert await ids(client, 'summary not like "%a%"') == expected(app, lambda t: "a" not in t["summary"].lower())
    assert await ids(client, 'company/name like "_cme%"') == expected(
        app, lambda t: t["company"]["name"].startswith("Acme")
    )
    # SQL Server escapes: [%] is a literal percent, [[] a literal bracket, [_] a literal underscore.
    assert await ids(client, 'company/name like "100[%]%"') == expected(
        app, lambda t: t["company"]["name"].startswith("100%")
    )
    assert await ids(client, 'company/name like "[[]Bracket]%"') == expected(
        app, lambda t: t["company"]["name"].startswith("[Bracket]")
    )
    assert await ids(client, 'company/name like "Under[_]%"') == expected(
        app, lambda t: t["company"]["name"].startswith("Under_")
    )
    assert await ids(client, 'company/name like "[a-b]%"') == expected(
        app, lambda t: t["company"]["name"][0].lower() in "ab"
    )
    # Single-quoted literal holding a double quote, and a non-ASCII value.
    assert await ids(client, "company/name contains '\"Live\"'") == expected(
        app, lambda t: '"Live"' in t["company"]["name"]
    )
    assert await ids(client, 'company/name = "o\'brien family dental"') == expected(
        app, lambda t: t["company"]["name"] == "O'Brien Family Dental"
    )
    assert await ids(client, 'company/name contains "Söhne"') == expected(
        app, lambda t: "Söhne" in t["company"]["name"]
    )


async def test_and_or_precedence_and_parentheses(app, client):
    got = await ids(client, "priority/id = 1 or priority/id = 2 and closedFlag = false")
    assert got == expected(
        app, lambda t: t["priority"]["id"] == 1 or (t["priority"]["id"] == 2 and not t["closedFlag"])
    )
    got = await ids(client, "(priority/id = 1 OR priority/id = 2) AND closedFlag = false")
    assert got == expected(app, lambda t: t["priority"]["id"] in (1, 2) and not t["closedFlag"])


@pytest.mark.parametrize(
    "conditions",
    [
        "closedFlag = 1",
        "id = 'x'",
        "summary = unquoted",
        "lastUpdated > '2026-01-01'",
        'summary = "open',
        "summary contains 5",
        "id = 1 and",
        "nosuchfield = 1",
        "(id = 1",
    ],
)
async def test_malformed_conditions_are_400(client, conditions):
    response = await client.get("/service/tickets", params={"conditions": conditions})
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidObject" and response.json()["message"]


async def test_literal_type_error_uses_connectwise_wording(client):
    response = await client.get("/service/tickets", params={"conditions": "closedFlag = 1"})
    assert response.json()["message"].startswith(
        "Expected a boolean value, not a numeric. String values should be enclosed with double or single quotes;"
    )


async def test_child_and_custom_field_conditions(app, client):
    contacts = await ids(
        client, "id > 0", "/company/contacts", childConditions='communicationItems/value like "%@acme.example"'
    )
    store = app.state.store
    assert contacts == [c["id"] for c in store["contacts"].values() if c["company"]["identifier"] == "ACME"]
    assert await ids(client, "id > 0", customFieldConditions="caption='Client Reference' and value != null") == []
    field = {"id": 1, "caption": "Client Reference", "type": "Text", "entryMethod": "EntryField", "value": "PO-1"}
    for ticket_id in (1002, 1004):
        response = await client.patch(
            f"/service/tickets/{ticket_id}", json=[{"op": "replace", "path": "customFields", "value": [field]}]
        )
        assert response.status_code == 200
    got = await ids(client, "id > 0", customFieldConditions="caption='Client Reference' and value != null")
    assert got == [1002, 1004]


async def test_order_by_multiple_keys(app, client):
    response = await client.get(
        "/service/tickets", params={"orderBy": "priority/id desc, summary, id desc", "pageSize": 1000, "fields": "id"}
    )
    want = sorted(tickets(app), key=lambda t: -t["id"])
    want.sort(key=lambda t: t["summary"].casefold())
    want.sort(key=lambda t: t["priority"]["id"], reverse=True)
    assert [r["id"] for r in response.json()] == [t["id"] for t in want]
    bad = await client.get("/service/tickets", params={"orderBy": "summary sideways"})
    assert bad.status_code == 400


async def test_the_sla_deadlines_beyond_the_export_take_conditions_order_by_and_fields(app, client):
    cutoff = "2026-11-02T19:00:00Z"
    assert await ids(client, f"dateResponded = null and respondByGoalUTC <= [{cutoff}]") == expected(
        app, lambda t: "dateResponded" not in t and "respondByGoalUTC" in t and t["respondByGoalUTC"] <= cutoff
    )
    response = await client.get(
        "/service/tickets",
        params={
            "conditions": "resolutionGoalUTC != null",
            "orderBy": "resolutionGoalUTC desc, id",
            "pageSize": 1000,
            "fields": "id,resolutionGoalUTC",
        },
    )
    want = sorted((t for t in tickets(app) if "resolutionGoalUTC" in t), key=lambda t: t["id"])
    want.sort(key=lambda t: t["resolutionGoalUTC"], reverse=True)
    assert response.json() == [{"id": t["id"], "resolutionGoalUTC": t["resolutionGoalUTC"]} for t in want]
    assert (
        await client.get("/service/tickets", params={"conditions": "resolutionGoal < [2026-01-01]"})
    ).status_code == 400


async def test_fields_gives_partial_nested_records(client):
    response = await client.get("/service/tickets/1001", params={"fields": "id,summary,status/name,_info/lastUpdated"})
    body = response.json()
    assert set(body) == {"id", "summary", "status", "_info"}
    assert set(body["status"]) == {"name"} and set(body["_info"]) == {"lastUpdated"}
    listed = await client.get("/company/contacts", params={"fields": "firstName,communicationItems/value"})
    first = listed.json()[0]
    assert set(first) == {"firstName", "communicationItems"}
    assert all(set(item) == {"value"} for item in first["communicationItems"])


def _links(header: str) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]*)>; rel="(\w+)"', header)}


async def test_navigable_paging_walks_to_the_end_with_link_headers(app, client):
    seen: list[int] = []
    url = "/service/tickets?conditions=closedFlag%3Dtrue&pageSize=17"
    pages = 0
    while url:
        response = await client.get(url)
        seen += [r["id"] for r in response.json()]
        pages += 1
        links = _links(response.headers.get("Link", ""))
        for link in links.values():
            assert re.search(r"[?&]page=\d+$", link), "page= must be the last query parameter"
        if pages == 1:
            assert set(links) == {"next", "last"}
        url = links.get("next")
    assert seen == expected(app, lambda t: t["closedFlag"])
    assert pages == -(-len(seen) // 17)
    assert set(links) == {"first", "prev"}
    count = await client.get("/service/tickets/count", params={"conditions": "closedFlag=true"})
    assert count.json() == {"count": len(seen)}


async def test_page_size_default_and_cap(client):
    assert len((await client.get("/service/tickets")).json()) == 25
    big = create_app(SandboxSettings(tickets=1100))
    async with sandbox_http(big) as other:
        assert len((await other.get("/service/tickets", params={"pageSize": 5000})).json()) == 1000
    single = await client.get("/service/tickets", params={"conditions": "id = 1001"})
    assert "Link" not in single.headers


async def test_forward_only_paging_walks_by_id(app, client):
    headers = {"pagination-type": "forward-only"}
    seen: list[int] = []
    url = "/service/tickets?conditions=closedFlag%3Dfalse&pageSize=13"
    while url:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200
        seen += [r["id"] for r in response.json()]
        link = response.headers["Link"]
        url = _links(link).get("next") if link else None
        if url:
            assert re.search(r"[?&]pageId=\d+$", url)
    assert seen == expected(app, lambda t: not t["closedFlag"])
    refused = await client.get("/service/tickets", params={"orderBy": "id desc"}, headers=headers)
    assert refused.status_code == 400


async def test_search_post_takes_conditions_in_the_body(app, client):
    response = await client.post(
        "/service/tickets/search",
        params={"pageSize": 1000, "fields": "id"},
        json={"conditions": "closedFlag = false", "orderBy": "id desc"},
    )
    assert response.status_code == 200
    assert [r["id"] for r in response.json()] == expected(app, lambda t: not t["closedFlag"])[::-1]
