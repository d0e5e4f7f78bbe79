"""End to end: the client against the in-process ConnectWise sandbox over ASGI (no network)."""

from __future__ import annotations

import httpx2
import pytest

from mcp_server_connectwise.connectwise import (
    ApiCredentials,
    AuthenticationError,
    ClientSettings,
    ConnectWiseClient,
    NotFoundError,
    RequestRecord,
)
from mcp_server_connectwise.connectwise import client as client_module
from mcp_server_connectwise.connectwise.conditions import eq
from mcp_server_connectwise.sandbox.app import create_app
from mcp_server_connectwise.sandbox.settings import SandboxSettings

BASE = "http://127.0.0.1/v4_6_release/apis/3.0"


@pytest.fixture(autouse=True)
def fresh_discovery_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "_discovered_base_urls", {})


def sandbox_client(records: list[RequestRecord], private_key: str = "sandbox-private", **settings) -> ConnectWiseClient:
    app = create_app(SandboxSettings(tickets=60))
    settings.setdefault("base_url", None if "site" in settings else BASE)
    return ConnectWiseClient(
        ClientSettings(company_id="sandbox", client_id="sandbox-client", **settings),
        ApiCredentials("sandbox-public", private_key),
        transport=httpx2.ASGITransport(app),
        on_request=records.append,
    )


async def test_discovers_reads_pages_counts_and_writes() -> None:
    records: list[RequestRecord] = []
    async with sandbox_client(records, site="127.0.0.1") as client:
        assert await client.base_url() == BASE
        open_tickets = eq("closedFlag", False)
        total = await client.count("/service/tickets", conditions=open_tickets)
        rows = await client.list_all(
            "/service/tickets", conditions=open_tickets, fields=["id", "summary"], page_size=10, limit=25
        )
        assert len(rows) == min(25, total) and all(set(row) <= {"id", "summary", "_info"} for row in rows)

        records.clear()
        everything = await client.list_all("/service/tickets", page_size=25, order_by="id")
        assert len(everything) == await client.count("/service/tickets")
        assert len(records) == -(-len(everything) // 25) + 1  # one request per page, then the count

        ticket_id = rows[0]["id"]
        note = await client.post(
            f"/service/tickets/{ticket_id}/notes", {"text": "Rebooted the printer.", "internalAnalysisFlag": True}
        )
        assert note["id"] and note["text"] == "Rebooted the printer."
        patched = await client.patch(
            f"/service/tickets/{ticket_id}", [{"op": "replace", "path": "summary", "value": "Printer rebooted"}]
        )
        assert patched["summary"] == "Printer rebooted"
        with pytest.raises(NotFoundError):
            await client.get("/service/tickets/99999999")


async def test_wrong_private_key_is_an_authentication_error() -> None:
    async with sandbox_client([], private_key="wrong") as client:
        with pytest.raises(AuthenticationError):
            await client.get("/system/info")
