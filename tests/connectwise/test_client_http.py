"""ConnectWiseClient against a MockTransport that answers like ConnectWise: headers, discovery, query, paging."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import httpx2
import pytest

from mcp_server_connectwise.connectwise import (
    ApiCredentials,
    ClientSettings,
    ConnectWiseClient,
    DiscoveryError,
    RequestRecord,
)
from mcp_server_connectwise.connectwise import client as client_module
from mcp_server_connectwise.connectwise.conditions import and_, eq, ne, serialize
from mcp_server_connectwise.connectwise.hosts import is_loopback_host

BASE = "https://api-na.myconnectwise.net/v2025_1/apis/3.0"
CLIENT_ID = "3f2b1c4e-9a8d-4e7f-b6a5-1c2d3e4f5a6b"
CREDENTIALS = ApiCredentials(public_key="pubKEY123", private_key="privSECRET456")


@pytest.fixture(autouse=True)
def fresh_discovery_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "_discovered_base_urls", {})


def make_client(handler, *, records: list[RequestRecord] | None = None, **settings) -> ConnectWiseClient:
    settings.setdefault("base_url", None if "site" in settings else BASE)
    return ConnectWiseClient(
        ClientSettings(company_id="acme", client_id=CLIENT_ID, **settings),
        CREDENTIALS,
        transport=httpx2.MockTransport(handler),
        on_request=records.append if records is not None else None,
    )


def query(request: httpx2.Request) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(request.url.query.decode()).items()}


async def test_auth_client_id_accept_and_timeouts_are_exact() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"id": 5, "summary": "Printer on fire"})

    async with make_client(handler) as client:
        assert await client.get("/service/tickets/5") == {"id": 5, "summary": "Printer on fire"}

    (request,) = seen
    assert str(request.url) == f"{BASE}/service/tickets/5"
    expected = base64.b64encode(b"acme+pubKEY123:privSECRET456").decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.headers["clientId"] == CLIENT_ID
    assert request.headers["Accept"] == "application/vnd.connectwise.com+json; version=2025.1"
    assert request.extensions["timeout"] == {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}


async def test_api_version_and_timeouts_are_configurable() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={})

    async with make_client(handler, api_version="2024.3", connect_timeout=2, read_timeout=9) as client:
        await client.get("/system/info")
    assert seen[0].headers["Accept"] == "application/vnd.connectwise.com+json; version=2024.3"
    assert seen[0].extensions["timeout"]["connect"] == 2 and seen[0].extensions["timeout"]["read"] == 9


def companyinfo_handler(calls: list[httpx2.Request], codebase: str = "v2025_1/"):
    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request)
        if request.url.path.startswith("/login/companyinfo/"):
            return httpx2.Response(
                200,
                json={
                    "CompanyName": "Acme MSP",
                    "Codebase": codebase,
                    "VersionCode": "v2025.1",
                    "VersionNumber": "v4.6.12345",
                    "CompanyID": "acme",
                    "IsCloud": True,
                },
            )
        return httpx2.Response(200, json={"version": "v2025.1", "isCloud": True})

    return handler


async def test_discovery_uses_companyinfo_without_auth_then_caches_for_the_process() -> None:
    calls: list[httpx2.Request] = []
    async with make_client(companyinfo_handler(calls), site="api-na.myconnectwise.net") as client:
        assert await client.base_url() == BASE
        await client.get("/system/info")
        await client.get("/system/info")

    info_request, first, second = calls
    assert str(info_request.url) == "https://api-na.myconnectwise.net/login/companyinfo/acme"
    assert "Authorization" not in info_request.headers and "clientId" not in info_request.headers
    assert str(first.url) == str(second.url) == f"{BASE}/system/info"

    calls.clear()  # a second client for the same (site, company) asks no more
    async with make_client(companyinfo_handler(calls), site="API-NA.myconnectwise.net") as other:
        await other.get("/system/info")
    assert [str(request.url) for request in calls] == [f"{BASE}/system/info"]


async def test_discovery_on_loopback_uses_http_and_the_on_premise_codebase() -> None:
    calls: list[httpx2.Request] = []
    async with make_client(companyinfo_handler(calls, "v4_6_release/"), site="127.0.0.1:8080") as client:
        assert await client.base_url() == "http://127.0.0.1:8080/v4_6_release/apis/3.0"
    assert str(calls[0].url) == "http://127.0.0.1:8080/login/companyinfo/acme"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("127.255.255.254", True),
        ("localhost", True),
        ("LocalHost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("192.168.1.5", False),
        ("128.0.0.1", False),
        ("api-na.myconnectwise.net", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.evil.example", False),
        ("127.0.0.1:8080", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    """One answer for the client, the config and the HTTP transports; a port is not part of a host."""
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("site", "scheme"),
    [
        ("127.0.0.2:8080", "http"),
        ("[::1]:8080", "http"),
        ("localhost", "http"),
        ("10.0.0.1:8080", "https"),
        ("localhost.evil.example", "https"),
    ],
)
async def test_discovery_speaks_http_only_to_loopback_sites(site: str, scheme: str) -> None:
    calls: list[httpx2.Request] = []
    async with make_client(companyinfo_handler(calls, "v4_6_release/"), site=site) as client:
        assert await client.base_url() == f"{scheme}://{site}/v4_6_release/apis/3.0"
    assert str(calls[0].url).startswith(f"{scheme}://")


@pytest.mark.parametrize("status", [200, 404])
async def test_unknown_company_text_body_is_an_actionable_discovery_error(status: int) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, text="Cannot route. Codebase/company is invalid")

    async with make_client(handler, site="api-na.myconnectwise.net") as client:
        with pytest.raises(DiscoveryError) as caught:
            await client.get("/system/info")
    text = str(caught.value)
    assert "'acme'" in text and "api-na.myconnectwise.net" in text
    assert "Cannot route. Codebase/company is invalid" in text
    assert client_module._discovered_base_urls == {}


def test_settings_need_exactly_one_of_base_url_and_site() -> None:
    with pytest.raises(ValueError):
        ClientSettings(company_id="acme", client_id=CLIENT_ID)
    with pytest.raises(ValueError):
        ClientSettings(company_id="acme", client_id=CLIENT_ID, base_url=BASE, site="api-na.myconnectwise.net")


async def test_list_query_parameters() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=[{"id": 1, "summary": "VPN down"}])

    conditions = and_(eq("board/name", "Service Desk"), eq("closedFlag", False))
    async with make_client(handler) as client:
        page = await client.get_page(
            "/service/tickets",
            conditions=conditions,
            child_conditions=eq("communicationItems/value", "a@b.com"),
            custom_field_conditions=and_(eq("caption", "Site"), ne("value", None)),
            order_by="dateEntered desc",
            fields=["id", "summary", "status/name"],
            page=2,
            page_size=50,
        )
    assert page.items == [{"id": 1, "summary": "VPN down"}] and page.page == 2 and page.page_size == 50
    assert page.has_next is False
    assert seen[0].url.path == "/v2025_1/apis/3.0/service/tickets"
    assert query(seen[0]) == {
        "conditions": serialize(conditions),
        "childConditions": 'communicationItems/value = "a@b.com"',
        "customFieldConditions": 'caption = "Site" and value != null',
        "orderBy": "dateEntered desc",
        "fields": "id,summary,status/name",
        "pageSize": "50",
        "page": "2",
    }


async def test_conditions_must_be_built_never_a_raw_string() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise AssertionError("no request may be sent")

    async with make_client(handler) as client:
        with pytest.raises(TypeError):
            await client.get_page("/service/tickets", conditions='summary = "x" or 1=1')  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await client.count("/service/tickets", conditions="id > 0")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "path", ["https://evil.example/x", "//evil.example/x", "service/tickets", "/service/tickets?page=2"]
)
async def test_paths_must_stay_under_the_base_url(path: str) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise AssertionError("no request may be sent")

    async with make_client(handler) as client:
        with pytest.raises(ValueError):
            await client.get(path)


async def test_page_size_is_bounded_by_connectwise_maximum() -> None:
    async with make_client(lambda request: httpx2.Response(200, json=[])) as client:
        with pytest.raises(ValueError):
            await client.get_page("/service/tickets", page_size=1001)


def paging_handler(total: int, requests: list[httpx2.Request]):
    """Serves `total` companies like ConnectWise: a Link header with next/last while more pages exist."""
    rows = [{"id": n, "identifier": f"C{n}"} for n in range(1, total + 1)]

    def handler(request: httpx2.Request) -> httpx2.Response:
        requests.append(request)
        params = query(request)
        size, page = int(params.get("pageSize", 25)), int(params.get("page", 1))
        last = max(1, -(-total // size))
        # Real links carry the other parameters (commas included) and keep page= last.
        keep = "".join(f"{name}={value}&" for name, value in params.items() if name not in ("page", "pageSize"))
        link = f'<{BASE}/company/companies?{keep}pageSize={size}&page={{}}>; rel="{{}}"'
        links = [link.format(1, "first")] if page > 1 else []
        if page < last:
            links += [link.format(page + 1, "next"), link.format(last, "last")]
        headers = {"Link": ", ".join(links)} if links else {}
        return httpx2.Response(200, json=rows[(page - 1) * size : page * size], headers=headers)

    return handler


async def test_iterate_follows_link_and_stops_fetching_at_limit() -> None:
    requests: list[httpx2.Request] = []
    async with make_client(paging_handler(250, requests)) as client:
        rows = [row async for row in client.iterate("/company/companies", fields=["id", "identifier"], limit=150)]
    assert [row["id"] for row in rows] == list(range(1, 151))
    assert [query(request)["page"] for request in requests] == ["1", "2"]  # page 3 never fetched


async def test_small_limit_asks_for_a_small_page() -> None:
    requests: list[httpx2.Request] = []
    async with make_client(paging_handler(250, requests)) as client:
        rows = await client.list_all("/company/companies", limit=5)
    assert len(rows) == 5
    assert [(query(request)["pageSize"], query(request)["page"]) for request in requests] == [("5", "1")]


async def test_list_all_reads_every_page_until_no_next_link() -> None:
    requests: list[httpx2.Request] = []
    async with make_client(paging_handler(250, requests)) as client:
        rows = await client.list_all("/company/companies", page_size=100, order_by="id")
    assert [row["id"] for row in rows] == list(range(1, 251))
    assert [query(request)["page"] for request in requests] == ["1", "2", "3"]
    assert all(query(request)["orderBy"] == "id" for request in requests)


@pytest.mark.parametrize(
    ("link", "has_next"),
    [
        (f'<{BASE}/x?fields=id,summary&pageSize=2&page=2>; rel="next", <{BASE}/x?pageSize=2&page=9>; rel="last"', True),
        (f'<{BASE}/x?pageSize=2&page=1>; rel="first", <{BASE}/x?pageSize=2&page=1>; rel="prev"', False),
        (f"<{BASE}/x?page=2>; rel=next", True),
        ("", False),
        (None, False),
    ],
)
def test_link_header_next(link: str | None, has_next: bool) -> None:
    assert client_module.has_next_link(link) is has_next


async def test_count_calls_the_count_path_with_the_same_conditions() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"count": 42})

    async with make_client(handler) as client:
        assert await client.count("/service/tickets", conditions=eq("closedFlag", False)) == 42
    assert seen[0].url.path.endswith("/service/tickets/count")
    assert query(seen[0]) == {"conditions": "closedFlag = false"}


async def test_writes_send_json_and_read_the_answer() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx2.Response(201, json={"id": 7, **json.loads(request.content)})
        if request.method == "DELETE":
            return httpx2.Response(204)
        return httpx2.Response(200, json={"id": 7, "summary": "New Summary"})

    operations = [{"op": "replace", "path": "status", "value": {"id": 123}}]
    records: list[RequestRecord] = []
    async with make_client(handler, records=records) as client:
        created = await client.post("/service/tickets", {"summary": "Printer", "company": {"identifier": "ABC"}})
        patched = await client.patch("/service/tickets/7", operations)
        replaced = await client.put("/service/tickets/7", {"summary": "New Summary"})
        assert await client.delete("/service/tickets/7") is None

    assert created["id"] == 7 and patched["summary"] == replaced["summary"] == "New Summary"
    assert [request.method for request in seen] == ["POST", "PATCH", "PUT", "DELETE"]
    assert json.loads(seen[1].content) == operations
    assert [(r.method, r.path, r.status, r.attempt) for r in records] == [
        ("POST", "/service/tickets", 201, 1),
        ("PATCH", "/service/tickets/7", 200, 1),
        ("PUT", "/service/tickets/7", 200, 1),
        ("DELETE", "/service/tickets/7", 204, 1),
    ]
    assert all(record.elapsed_ms >= 0 for record in records)


async def test_request_records_carry_no_query_string() -> None:
    records: list[RequestRecord] = []
    async with make_client(lambda request: httpx2.Response(200, json=[]), records=records) as client:
        await client.get_page("/service/tickets", conditions=eq("summary", "secret project"))
    assert records[0].path == "/service/tickets"


async def test_credentials_and_client_reprs_hide_the_keys() -> None:
    assert repr(CREDENTIALS) == str(CREDENTIALS) == "ApiCredentials(public_key='***', private_key='***')"
    async with make_client(lambda request: httpx2.Response(200)) as client:
        assert "SECRET" not in repr(client) and "pubKEY" not in repr(client)
