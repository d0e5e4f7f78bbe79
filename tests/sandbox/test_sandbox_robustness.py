"""What a third-party ConnectWise client throws at the sandbox: minimal bodies, malformed bodies and patches,
odd ids and query parameters. Nothing may answer 500 (a sandbox bug); every error is ConnectWise-shaped
(`{code, message}`), and every API response carries ConnectWise's headers."""

from __future__ import annotations

import json
import logging
import re

import httpx2
import pytest

from mcp_server_connectwise.sandbox import SANDBOX_BASE_URL, SandboxSettings, create_app
from mcp_server_connectwise.sandbox.routes import RESOURCES
from mcp_server_connectwise.sandbox.store import MODEL_FIELDS, TABLES

from support.sandbox_http import MINIMAL_POSTS, sandbox_http

JSON_TYPE = "application/json; charset=utf-8"

OTHER_POSTS = ("/service/tickets/search", "/system/members/jsmith/tokens")


@pytest.fixture
def app():
    return create_app(SandboxSettings(tickets=60))


@pytest.fixture
async def client(app):
    async with sandbox_http(app, "robustness") as client:
        yield client


def ticket_on_board_1(app) -> int:
    """A ticket of the Service Desk board with no configuration attached."""
    store = app.state.store
    return next(
        t["id"]
        for t in store["tickets"].values()
        if t["board"]["id"] == 1 and t["id"] not in store.ticket_configurations
    )


def concrete(path: str, ticket: int) -> str:
    return path.replace("{ticket}", str(ticket)).replace("{board}", "1")


def assert_connectwise_error(response: httpx2.Response) -> None:
    assert response.status_code < 500, f"{response.request.method} {response.request.url}: {response.text}"
    assert response.status_code >= 400, response.text
    assert response.headers["content-type"] == JSON_TYPE
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("code"), str) and isinstance(body.get("message"), str), body
    if "errors" in body and body["errors"] is not None:
        for error in body["errors"]:
            assert set(error) >= {"code", "message", "resource", "field"}, error


# --- 1. minimal bodies ------------------------------------------------------------------------------------


def test_every_post_endpoint_is_covered():
    creates = {
        r.path.replace("{parent:int}", "{board}" if "boards" in r.path else "{ticket}") for r in RESOURCES if r.writable
    }
    assert creates | {"/service/tickets/{ticket}/configurations"} == set(MINIMAL_POSTS)


@pytest.mark.parametrize("path", sorted(MINIMAL_POSTS))
async def test_minimal_post_takes_defaults(app, client, path):
    url = concrete(path, ticket_on_board_1(app))
    response = await client.post(url, json=MINIMAL_POSTS[path])
    assert response.status_code == 201, response.text
    record = response.json()
    one = await client.get(f"{url}/{record['id']}")
    assert one.status_code == 200 and one.json() == record
    assert (await client.get(url, params={"pageSize": 1000})).status_code == 200


@pytest.mark.parametrize("path", sorted(MINIMAL_POSTS) + sorted(OTHER_POSTS))
@pytest.mark.parametrize("body", [None, {}, [], [{}], "text", 0, {"id": None, "name": None}])
async def test_empty_or_wrong_bodies_are_connectwise_errors(app, client, path, body):
    url = concrete(path, ticket_on_board_1(app))
    response = await client.post(url, json=body) if body is not None else await client.post(url)
    if path.endswith("/tokens") or (path in OTHER_POSTS and (body is None or isinstance(body, dict))):
        assert response.status_code == 200, response.text
    else:
        assert_connectwise_error(response)
        assert response.status_code == 400


async def test_a_status_posted_without_optional_fields_is_a_working_status(app, client):
    """The KeyError of a status without `closedStatus`: it is created with ConnectWise's defaults and tickets
    can move to it, be created on it and be closed around it."""
    created = await client.post("/service/boards/1/statuses", json={"name": "Triage"})
    assert created.status_code == 201
    status = created.json()
    assert status["closedStatus"] is False and status["inactive"] is False and status["defaultFlag"] is False
    assert status["timeEntryNotAllowed"] is False and status["displayOnBoard"] is True
    assert status["escalationStatus"] == "NoEscalation" and status["board"]["id"] == 1
    on_board = [s for s in app.state.store["statuses"].values() if s["board"]["id"] == 1 and s["id"] != status["id"]]
    assert status["sortOrder"] == max(s["sortOrder"] for s in on_board) + 1
    ticket_id = ticket_on_board_1(app)
    moved = await client.patch(
        f"/service/tickets/{ticket_id}", json=[{"op": "replace", "path": "status", "value": {"name": "Triage"}}]
    )
    assert moved.status_code == 200 and moved.json()["closedFlag"] is False
    posted = await client.post(
        "/service/tickets", json={**MINIMAL_POSTS["/service/tickets"], "status": {"id": status["id"]}}
    )
    assert posted.status_code == 201 and posted.json()["status"]["name"] == "Triage"
    closed = await client.patch(
        f"/service/tickets/{ticket_id}", json=[{"op": "replace", "path": "closedFlag", "value": True}]
    )
    assert closed.status_code == 200 and closed.json()["closedFlag"] is True
    # A status stripped of its flags by PATCH or PUT goes back to the defaults, and still works.
    stripped = await client.patch(
        f"/service/boards/1/statuses/{status['id']}",
        json=[{"op": "remove", "path": "closedStatus"}, {"op": "remove", "path": "inactive"}],
    )
    assert stripped.status_code == 200 and stripped.json()["closedStatus"] is False
    replaced = await client.put(f"/service/boards/1/statuses/{status['id']}", json={"name": "Triage 2"})
    assert replaced.status_code == 200 and replaced.json()["closedStatus"] is False
    assert replaced.json()["board"]["id"] == 1
    moved = await client.patch(
        f"/service/tickets/{ticket_id}", json=[{"op": "replace", "path": "status", "value": {"id": status["id"]}}]
    )
    assert moved.status_code == 200 and moved.json()["status"]["name"] == "Triage 2"


async def test_minimal_records_get_connectwise_defaults(client):
    ticket = (await client.post("/service/tickets", json=MINIMAL_POSTS["/service/tickets"])).json()
    assert ticket["status"]["name"] == "New" and ticket["priority"]["name"] == "Priority 3 - Normal Response"
    assert ticket["severity"] == "Medium" and ticket["impact"] == "Medium" and ticket["closedFlag"] is False
    company = (await client.post("/company/companies", json=MINIMAL_POSTS["/company/companies"])).json()
    assert company["status"]["name"] == "Active" and company["deletedFlag"] is False
    device = (await client.post("/company/configurations", json=MINIMAL_POSTS["/company/configurations"])).json()
    assert device["activeFlag"] is True and device["status"]["name"] == "Active"
    board = (await client.post("/service/boards", json=MINIMAL_POSTS["/service/boards"])).json()
    assert board["inactiveFlag"] is False and board["projectFlag"] is False
    entry = (await client.post("/time/entries", json=MINIMAL_POSTS["/time/entries"])).json()
    assert entry["actualHours"] == 0.5 and entry["billableOption"] == "Billable" and entry["status"] == "Open"
    # Enumerations are read case-insensitively and kept in ConnectWise's spelling.
    lower = await client.post("/service/tickets", json={**MINIMAL_POSTS["/service/tickets"], "severity": "high"})
    assert lower.json()["severity"] == "High"
    wrong = await client.post("/service/tickets", json={**MINIMAL_POSTS["/service/tickets"], "severity": "Extreme"})
    assert_connectwise_error(wrong)
    assert [(e["code"], e["field"]) for e in wrong.json()["errors"]] == [("InvalidField", "severity")]


async def test_a_ticket_on_a_board_without_statuses_is_refused_not_crashed(client):
    board = (await client.post("/service/boards", json=MINIMAL_POSTS["/service/boards"])).json()
    response = await client.post(
        "/service/tickets", json={**MINIMAL_POSTS["/service/tickets"], "board": {"id": board["id"]}}
    )
    assert_connectwise_error(response)
    assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [("MissingRequiredField", "status")]
    await client.post(f"/service/boards/{board['id']}/statuses", json={"name": "Open"})
    response = await client.post(
        "/service/tickets", json={**MINIMAL_POSTS["/service/tickets"], "board": {"id": board["id"]}}
    )
    assert response.status_code == 201 and response.json()["status"]["name"] == "Open"


async def test_required_fields_cannot_be_patched_away(app, client):
    ticket_id = ticket_on_board_1(app)
    for path in ("board", "company", "summary"):
        for operation in (
            {"op": "remove", "path": path},
            {"op": "replace", "path": path, "value": None},
            {"op": "replace", "path": path},
        ):
            response = await client.patch(f"/service/tickets/{ticket_id}", json=[operation])
            assert_connectwise_error(response)
            assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [("MissingRequiredField", path)]
    assert app.state.store["tickets"][ticket_id]["board"]["id"] == 1
    # A child's parent comes from its URL: patching it changes nothing.
    moved = await client.patch(
        "/service/boards/1/statuses/1", json=[{"op": "replace", "path": "board", "value": {"id": 2}}]
    )
    assert moved.status_code == 200 and moved.json()["board"]["id"] == 1


# --- 3. malformed input, swept over every route -----------------------------------------------------------

ODD_VALUES = [
    "",
    "x" * 300,
    0,
    -1,
    1.5,
    1e308,
    2**70,
    True,
    {},
    [],
    [1, "x"],
    {"id": 999999},
    {"id": "abc"},
    {"id": [1]},
    {"name": 5},
    "notadate",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "\ud800 text",
    None,
]


async def test_every_field_of_every_writable_resource_with_odd_values(app, client, caplog):
    """Each field, in a POST and in a PATCH, with values of the wrong type, out of range or unresolvable:
    a 2xx or a ConnectWise-shaped 400, never a crash (rotating through ODD_VALUES keeps this quick)."""
    caplog.set_level(logging.ERROR)
    ticket = ticket_on_board_1(app)
    turn = 0
    for resource in RESOURCES:
        if not resource.writable:
            continue
        template = resource.path.replace("{parent:int}", "{board}" if "boards" in resource.path else "{ticket}")
        url = concrete(template, ticket)
        base = MINIMAL_POSTS[template]
        created = await client.post(url, json=base)
        assert created.status_code == 201, created.text
        item = f"{url}/{created.json()['id']}"
        for field in MODEL_FIELDS[TABLES[resource.table].model]:
            for _ in range(2):
                value = ODD_VALUES[turn % len(ODD_VALUES)]
                turn += 1
                for method, target, body in (
                    ("POST", url, {**base, field: value}),
                    ("PATCH", item, [{"op": "replace", "path": field, "value": value}]),
                    ("PATCH", item, [{"op": "remove", "path": field}]),
                ):
                    # json.dumps escapes the lone surrogate httpx's own encoder refuses.
                    response = await client.request(
                        method, target, content=json.dumps(body), headers={"Content-Type": "application/json"}
                    )
                    if response.status_code >= 400:
                        assert_connectwise_error(response)
                    else:
                        assert response.status_code in (200, 201), response.text
            assert (await client.get(item)).status_code == 200
    assert not [r for r in caplog.records if "sandbox request failed" in r.getMessage()]


def item_routes(app) -> list[tuple[str, str]]:
    """(collection path, an existing item's path) for every resource, with real parent ids."""
    ticket = ticket_on_board_1(app)
    store = app.state.store
    out = []
    for resource in RESOURCES:
        collection = resource.path.replace("{parent:int}", "1" if "boards" in resource.path else str(ticket))
        table = store[resource.table]
        if resource.table == "notes":
            first = store.children("notes", ticket)[0]["id"]
        elif resource.table in ("statuses", "types", "subtypes", "items"):
            first = store.children(resource.table, 1)[0]["id"]
        else:
            first = next(iter(table))
        out.append((collection, f"{collection}/{first}"))
    return out


BAD_BODIES = [
    b"{not json",
    b"[1, 2",
    b"NaN",
    b'{"a": Infinity}',
    b"\xff\xfe\x00",
    b"'single'",
    b"[" * 5000,
    b'"just a string"',
    b"42",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"[[]]",
    b"[1]",
]


async def test_malformed_bodies_on_every_route_are_connectwise_errors(app, client, caplog):
    caplog.set_level(logging.ERROR)
    headers = {"Content-Type": "application/json"}
    for collection, item in item_routes(app) + [("/service/tickets/search", "/system/members/jsmith/tokens")]:
        for body in BAD_BODIES:
            for method, url in (("POST", collection), ("PUT", item), ("PATCH", item)):
                response = await client.request(method, url, content=body, headers=headers)
                assert response.status_code < 500, (method, url, body[:20], response.text)
                if response.status_code >= 400:
                    assert_connectwise_error(response)
    assert not [r for r in caplog.records if "sandbox request failed" in r.getMessage()]


BAD_PATCHES = [
    [{"op": "frobnicate", "path": "summary", "value": "x"}],
    [{"op": None, "path": "summary", "value": "x"}],
    [{"path": "summary", "value": "x"}],
    [{"op": "replace", "value": "x"}],
    [{"op": "replace", "path": 5}],
    [{"op": "replace", "path": None, "value": "x"}],
    [{"op": "replace", "path": "", "value": "x"}],
    [{"op": "replace", "path": "/", "value": "x"}],
    [{"op": "test", "path": "summary", "value": "x"}],
    [{"op": "move", "from": "summary", "path": "contactName"}],
    ["replace"],
    [None],
    [[]],
    [],
    [{"op": "replace", "path": "nope", "value": 1}],
    [{"op": "replace", "path": "Summary", "value": "x"}],
    [{"op": "replace", "path": "summary", "value": {"nested": True}}],
    [{"op": "replace", "path": "id", "value": "x"}],
    [{"op": "replace", "path": "_info", "value": None}],
]


@pytest.mark.parametrize("operations", BAD_PATCHES)
async def test_malformed_patch_operations_are_connectwise_errors(app, client, operations):
    ticket_id = ticket_on_board_1(app)
    before = dict(app.state.store["tickets"][ticket_id])
    response = await client.patch(f"/service/tickets/{ticket_id}", json=operations)
    if response.status_code == 200:  # id and _info are read-only: ignored, as ConnectWise does
        assert operations[0]["path"] in ("id", "_info")
        assert response.json()["summary"] == before["summary"]
        return
    assert_connectwise_error(response)
    assert response.status_code == 400
    assert app.state.store["tickets"][ticket_id]["summary"] == before["summary"]


async def test_patch_paths_are_names_or_json_pointers(app, client):
    """API.md documents bare, case-sensitive names (`status`); RFC 6902 clients send `/status`: both work."""
    ticket_id = ticket_on_board_1(app)
    response = await client.patch(
        f"/service/tickets/{ticket_id}",
        json=[
            {"op": "replace", "path": "/summary", "value": "Pointer form"},
            {"op": "Replace", "path": "status", "value": {"name": "In Progress"}},
        ],
    )
    assert response.status_code == 200
    assert response.json()["summary"] == "Pointer form" and response.json()["status"]["name"] == "In Progress"
    # A missing value reads as null (.NET cannot tell them apart): an optional field is cleared.
    response = await client.patch(f"/service/tickets/{ticket_id}", json=[{"op": "replace", "path": "/contactName"}])
    assert response.status_code == 200 and "contactName" not in response.json()


@pytest.mark.parametrize(
    "path",
    [
        "/service/tickets/abc",
        "/service/tickets/-1",
        "/service/tickets/1.5",
        "/service/tickets/1e3",
        "/service/tickets/%20",
        "/service/boards/abc/statuses",
        "/service/tickets/abc/notes",
        "/service/tickets/1001/notes/abc",
        "/company/contacts/0x10",
        "/service/tickets/abc/configurations",
    ],
)
@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE", "POST"])
async def test_ids_that_are_not_integers_are_unknown_endpoints(client, path, method):
    """[I] ConnectWise routes ids as `{id:int}`: anything else matches no route, so it is the unknown-endpoint
    404 (not a 400, not a 500)."""
    response = await client.request(
        method, path, json=[{"op": "replace", "path": "summary", "value": "x"}] if method == "PATCH" else {}
    )
    assert_connectwise_error(response)
    assert response.status_code == 404
    assert response.json() == {"code": "ConnectWiseApi", "message": "The endpoint does not exist."}


QUERY_SWEEP = {
    "page": ["0", "-1", "abc", "", "1.5", "99999999"],
    "pageSize": ["0", "5000", "abc", "-3", "", "1e3"],
    "pageId": ["abc", "-1", "0"],
    "orderBy": ["nope", "nope desc", "id sideways", "id desc desc", ",", " ", "customFields", "board/name desc"],
    "fields": ["id, summary", " id ,  name ", " ", ",,", "nope", "id/x", "a b", "/"],
    "conditions": ["", " ", "id=", "()", "id = 1 and", "nope = 1", "summary like '[z-a]'", "(" * 3000 + "id=1"],
    "childConditions": ["x = 1", "(("],
    "customFieldConditions": ["nope = 1", "value = 5", "(("],
    "someUnknownParameter": ["1"],
}


async def test_query_parameter_sweep_on_every_list(app, client):
    lists = [collection for collection, _item in item_routes(app)]
    ticket = ticket_on_board_1(app)
    lists += [f"/service/tickets/{ticket}/allNotes", f"/service/tickets/{ticket}/configurations"]
    for path in lists:
        for name, values in QUERY_SWEEP.items():
            for value in values:
                for headers in ({}, {"pagination-type": "forward-only"}):
                    for suffix in ("", "/count"):
                        if suffix and path.endswith("allNotes"):
                            continue
                        response = await client.get(path + suffix, params={name: value}, headers=headers)
                        assert response.status_code < 500, (path + suffix, name, value, response.text)
                        if response.status_code >= 400:
                            assert_connectwise_error(response)
                            assert response.status_code == 400


async def test_query_parameter_decisions(client):
    base = await client.get("/service/tickets", params={"fields": "id"})
    ids = [r["id"] for r in base.json()]
    # page < 1 is the first page; pageSize < 1 the default; above 1000 the cap.
    for page in ("0", "-1"):
        assert [
            r["id"] for r in (await client.get("/service/tickets", params={"fields": "id", "page": page})).json()
        ] == ids
    assert len((await client.get("/service/tickets", params={"pageSize": "0"})).json()) == 25
    assert len((await client.get("/service/tickets", params={"pageSize": "5000"})).json()) == 60
    for name in ("page", "pageSize", "pageId"):
        refused = await client.get("/service/tickets", params={name: "abc"})
        assert refused.status_code == 400 and refused.json()["message"] == f"The value 'abc' is not valid for {name}."
    # Unknown parameters are ignored.
    same = await client.get("/service/tickets", params={"fields": "id", "colour": "blue", "Conditions2": "x"})
    assert [r["id"] for r in same.json()] == ids
    # orderBy on an unknown field is refused, as ConnectWise refuses an unknown field in conditions.
    unknown = await client.get("/service/tickets", params={"orderBy": "colour desc"})
    assert unknown.status_code == 400 and unknown.json()["code"] == "InvalidObject"
    # Spaces around `fields` names do not matter.
    spaced = await client.get("/service/tickets", params={"fields": " id , summary ,status/name "})
    assert all(set(r) == {"id", "summary", "status"} and set(r["status"]) == {"name"} for r in spaced.json())


async def test_paths_are_case_insensitive_and_take_a_trailing_slash(client):
    """[I] ASP.NET routing, as ConnectWise's API runs on, ignores case and a trailing slash."""
    plain = await client.get("/service/tickets/count")
    for path in ("/Service/Tickets/Count", "/service/tickets/count/", "/SERVICE/TICKETS/COUNT/"):
        response = await client.get(path)
        assert response.status_code == 200 and response.json() == plain.json()
    assert (await client.post("/System/Members/JSMITH/Tokens")).status_code == 200


async def test_json_edge_cases(app, client):
    ticket_id = ticket_on_board_1(app)
    # A UTF-8 byte order mark is fine (.NET accepts it); a lone surrogate is written back escaped.
    response = await client.patch(
        f"/service/tickets/{ticket_id}",
        headers={"Content-Type": "application/json"},
        content=b'\xef\xbb\xbf[{"op": "replace", "path": "summary", "value": "x \\ud800"}]',
    )
    assert response.status_code == 200
    assert response.json()["summary"] == "x \ud800"
    assert (await client.get(f"/service/tickets/{ticket_id}")).status_code == 200
    # A GET's body is ignored, whatever it holds.
    assert (await client.request("GET", f"/service/tickets/{ticket_id}", content=b"{oops")).status_code == 200


# --- 4. headers -------------------------------------------------------------------------------------------


async def test_connectwise_headers_on_every_kind_of_response(app, client):
    ticket_id = ticket_on_board_1(app)
    responses = [
        await client.get("/service/tickets"),
        await client.get("/service/tickets/count"),
        await client.get(f"/service/tickets/{ticket_id}"),
        await client.get("/system/info"),
        await client.post("/service/tickets", json=MINIMAL_POSTS["/service/tickets"]),
        await client.get("/service/tickets/1"),
        await client.get("/nope"),
        await client.post("/service/tickets"),
        await client.get("/system/info", auth=("sandbox+sandbox-public", "wrong")),
        await client.delete("/system/members/2"),
        await client.delete(f"/service/tickets/{ticket_id}"),
    ]
    for response in responses:
        assert response.headers["api-current-version"] == "2025.1", response.request.url
        assert len(response.headers.get_list("api-current-version")) == 1
        if response.status_code != 204:
            assert response.headers["content-type"] == JSON_TYPE
    assert responses[-1].status_code == 204 and responses[-1].content == b""


async def test_link_header_is_exactly_connectwise_s(client):
    """`<url?...&page=N>; rel="..."` joined by ", ", first/prev/next/last in that order, the request's own query
    kept and `page=` moved last."""
    url = SANDBOX_BASE_URL + "/service/tickets"
    first = await client.get("/service/tickets", params={"pageSize": 10})
    assert first.headers["Link"] == (f'<{url}?pageSize=10&page=2>; rel="next", <{url}?pageSize=10&page=6>; rel="last"')
    middle = await client.get("/service/tickets?page=3&pageSize=10&orderBy=id%20desc")
    assert middle.headers["Link"] == (
        f'<{url}?pageSize=10&orderBy=id%20desc&page=1>; rel="first", '
        f'<{url}?pageSize=10&orderBy=id%20desc&page=2>; rel="prev", '
        f'<{url}?pageSize=10&orderBy=id%20desc&page=4>; rel="next", '
        f'<{url}?pageSize=10&orderBy=id%20desc&page=6>; rel="last"'
    )
    last = await client.get("/service/tickets", params={"pageSize": 10, "page": 6})
    assert last.headers["Link"] == f'<{url}?pageSize=10&page=1>; rel="first", <{url}?pageSize=10&page=5>; rel="prev"'
    for link in re.findall(r"<([^>]*)>", middle.headers["Link"]):
        assert re.search(r"[?&]page=\d+$", link)


def test_minimal_bodies_only_name_known_fields():
    """The minimal bodies above are real ConnectWise fields (a typo would make the test pass for nothing)."""
    for path, body in MINIMAL_POSTS.items():
        if path.endswith("/configurations") and "{ticket}" in path:
            continue
        resource = next(
            r
            for r in RESOURCES
            if r.path.replace("{parent:int}", "{board}" if "boards" in r.path else "{ticket}") == path
        )
        fields = MODEL_FIELDS[TABLES[resource.table].model]
        assert set(body) <= set(fields), (path, set(body) - set(fields))
