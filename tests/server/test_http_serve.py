"""The real server over streamable HTTP and SSE, on 127.0.0.1, with bearer tokens: who may call, for which
tenants, what a read-only tenant or server lets through, and that the audit names the principal and never a secret.

Each tenant is its own in-process sandbox with its own API keys; principals reach them only through uvicorn.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette

from mcp_server_connectwise.audit import read_calls
from mcp_server_connectwise.config import AppConfig, AuditConfig, HttpConfig, Principal
from mcp_server_connectwise.http_auth import hash_token, new_token
from mcp_server_connectwise.http_guard import uvicorn_config
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.secrets import KeyStore
from mcp_server_connectwise.server import Listener, build_network_app

from support.registry import READS, TOOLS

TENANTS = ("acme", "globex", "initech")
READ_ONLY_TENANT = "initech"
TOKENS = {"alice": new_token(), "bob": new_token()}
PRINCIPAL_TENANTS = {"alice": ("acme", "initech"), "bob": ("globex",)}
SANDBOXES = {
    name: SandboxSettings(
        tickets=200, company=f"{name}-co", public_key=f"{name}-public-3f9a", private_key=f"{name}-private-8c1d"
    )
    for name in TENANTS
}
WRITE_CALLS = [
    ("add_ticket_note", {"ticket_id": 1001, "text": "hi"}),
    ("update_ticket", {"ticket_id": 1001, "status": "New"}),
    ("create_time_entry", {"ticket_id": 1001, "start": "2026-11-02T09:00:00Z", "hours": 1}),
]
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """A running server: its URL, its tenants' sandboxes and its audit file."""

    def __init__(self, url: str, sandboxes: dict[str, Starlette], audit_path: Path, transport: str) -> None:
        self.url, self.sandboxes, self.audit_path, self.transport = url, sandboxes, audit_path, transport

    @property
    def messages_url(self) -> str:
        """Where SSE clients post their messages."""
        return self.url.removesuffix("/sse").removesuffix("/mcp") + "/messages/"

    def requests(self, tenant: str) -> list[dict[str, Any]]:
        return self.sandboxes[tenant].state.request_log

    def audit(self) -> list[dict[str, Any]]:
        return read_calls(self.audit_path) if self.audit_path.exists() else []

    @asynccontextmanager
    async def client(self, principal: str) -> AsyncIterator[Client]:
        headers = bearer(TOKENS[principal])
        if self.transport == "sse":
            async with Client(sse_client(self.url, headers=headers)) as client:
                yield client
            return
        async with httpx2.AsyncClient(headers=headers) as http:
            async with Client(streamable_http_client(self.url, http_client=http)) as client:
                yield client


@asynccontextmanager
async def serving(tmp_path: Path, transport: str = "http", **options: Any) -> AsyncIterator[Served]:
    """build_network_app over one sandbox per tenant (keys in the keyring), run by uvicorn on a free port."""
    sandboxes = {
        name: sandbox_tenant(name, create_app(settings), read_only=name == READ_ONLY_TENANT)
        for name, settings in SANDBOXES.items()
    }
    for name, sandbox in sandboxes.items():
        KeyStore().set(name, sandbox.credentials)
    principals = {
        name: Principal(name=name, token_sha256=hash_token(token), tenants=PRINCIPAL_TENANTS[name])
        for name, token in TOKENS.items()
    }
    config = AppConfig(
        default_tenant="acme",
        audit=AuditConfig(path=tmp_path / "audit.jsonl"),
        http=HttpConfig(principals=principals, max_request_body_bytes=64 * 1024),
        tenants={name: sandbox.config for name, sandbox in sandboxes.items()},
    )
    listener = Listener(transport, "127.0.0.1", free_port())  # type: ignore[arg-type]
    transports = {name: sandbox.transport for name, sandbox in sandboxes.items()}
    app = build_network_app(config, listener, transports=transports, **options)
    server = uvicorn.Server(uvicorn_config(app, listener.host, listener.port, config.http))  # as `serve` runs it
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # surface a start-up failure
            await asyncio.sleep(0.01)
        yield Served(
            listener.url,
            {name: sandbox.app for name, sandbox in sandboxes.items()},
            tmp_path / "audit.jsonl",
            transport,
        )
    finally:
        server.should_exit = True
        await task


# --- authentication and Origin --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong"),
        bearer(hash_token(TOKENS["alice"])),
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {TOKENS['alice']}"},
    ],
)
async def test_http_answers_401_without_a_valid_token(tmp_path, headers):
    async with serving(tmp_path) as served, httpx2.AsyncClient() as raw:
        response = await raw.post(served.url, json=INITIALIZE, headers={**MCP_HEADERS, **headers})
        authed = await raw.post(served.url, json=INITIALIZE, headers={**MCP_HEADERS, **bearer(TOKENS["bob"])})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert authed.status_code == 200
    assert served.audit() == [] and all(served.requests(name) == [] for name in TENANTS)


@pytest.mark.parametrize("headers", [{}, bearer("wrong"), bearer(hash_token(TOKENS["alice"]))])
async def test_sse_answers_401_without_a_valid_token(tmp_path, headers):
    async with serving(tmp_path, "sse") as served, httpx2.AsyncClient() as raw:
        stream = await raw.get(served.url, headers=headers)
        message = await raw.post(served.messages_url, json=INITIALIZE, headers=headers)
    assert stream.status_code == 401 and message.status_code == 401


async def test_a_foreign_origin_gets_403_even_with_a_good_token(tmp_path):
    async with serving(tmp_path) as served, httpx2.AsyncClient() as raw:
        good = {**MCP_HEADERS, **bearer(TOKENS["alice"])}
        foreign = await raw.post(served.url, json=INITIALIZE, headers={**good, "Origin": "http://evil.example.com"})
        local = await raw.post(served.url, json=INITIALIZE, headers={**good, "Origin": "http://127.0.0.1:3000"})
    assert foreign.status_code == 403 and local.status_code == 200


async def test_sse_refuses_a_foreign_origin_with_403(tmp_path):
    async with serving(tmp_path, "sse") as served, httpx2.AsyncClient() as raw:
        headers = {**bearer(TOKENS["alice"]), "Origin": "http://evil.example.com"}
        async with raw.stream("GET", served.url, headers=headers) as response:
            assert response.status_code == 403


# --- tenants and least privilege, per principal -----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_a_principal_cannot_reach_another_tenant(tmp_path, transport):
    async with serving(tmp_path, transport) as served:
        async with served.client("bob") as bob:
            named = await bob.call_tool("get_ticket_details", {"ticket_id": 1001, "tenant": "acme"})
            by_default = await bob.call_tool("search_tickets", {})  # the server's default tenant is acme
            unknown = await bob.call_tool("search_tickets", {"tenant": "umbrella"})
            own = await bob.call_tool("search_tickets", {"tenant": "globex", "limit": 1})
        async with served.client("alice") as alice:
            allowed = await alice.call_tool("search_tickets", {"limit": 1})
    for result, tenant in [(named, "acme"), (by_default, "acme"), (unknown, "umbrella")]:
        assert result.is_error
        assert result.content[0].text.endswith(
            f": Principal 'bob' may not use tenant '{tenant}'; allowed: globex; nothing was sent."
        )
    assert own.is_error is False and allowed.is_error is False
    # acme saw only alice's search; globex only bob's: nothing of bob's refused calls reached ConnectWise.
    assert {r["principal"] for r in served.requests("acme")} == {"acme-co+acme-public-3f9a"}
    assert len(served.requests("acme")) == len(served.audit()[-1]["requests"])
    assert {r["principal"] for r in served.requests("globex")} == {"globex-co+globex-public-3f9a"}
    lines = served.audit()
    assert [(line["principal"], line["tenant"], line["outcome"]) for line in lines] == [
        ("bob", "acme", "refused"),
        ("bob", "acme", "refused"),
        ("bob", "umbrella", "refused"),
        ("bob", "globex", "ok"),
        ("alice", "acme", "ok"),
    ]
    assert all(line["requests"] == [] for line in lines[:3])


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_a_read_only_tenant_sends_no_write_to_connectwise(tmp_path, transport):
    async with serving(tmp_path, transport) as served, served.client("alice") as alice:
        tools = {tool.name for tool in (await alice.list_tools()).tools}
        writes = [await alice.call_tool(name, {**args, "tenant": READ_ONLY_TENANT}) for name, args in WRITE_CALLS]
        read = await alice.call_tool("get_ticket_details", {"ticket_id": 1001, "tenant": READ_ONLY_TENANT})
    assert tools == TOOLS  # acme allows writes
    for (name, _), result in zip(WRITE_CALLS, writes, strict=True):
        assert result.content[0].text == (
            f"Error executing tool {name}: Tenant initech is read-only, so {name} is not allowed there; nothing was sent."
        )
    assert read.is_error is False
    assert served.requests(READ_ONLY_TENANT) and {r["method"] for r in served.requests(READ_ONLY_TENANT)} == {"GET"}


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_a_read_only_server_lists_no_write_tool_over_the_network(tmp_path, transport):
    async with serving(tmp_path, transport, read_only=True) as served, served.client("alice") as alice:
        tools = (await alice.list_tools()).tools
        write = await alice.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "hi"})
    assert {tool.name for tool in tools} == READS
    assert write.is_error and "add_ticket_note" in write.content[0].text
    assert served.requests("acme") == []
    assert served.audit()[-1]["principal"] == "alice" and served.audit()[-1]["outcome"] == "refused"


# --- the audit names the principal; nothing anywhere shows a secret ----------------------------------------------


def secrets_in_play() -> list[str]:
    found = [*TOKENS.values(), *(hash_token(token) for token in TOKENS.values())]
    for settings in SANDBOXES.values():
        login = f"{settings.company}+{settings.public_key}:{settings.private_key}"
        found += [settings.private_key, base64.b64encode(login.encode()).decode()]
    return found


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_every_audit_line_names_its_principal_and_no_secret_is_logged(tmp_path, transport, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    async with serving(tmp_path, transport) as served:
        async with served.client("alice") as alice:
            await alice.call_tool("search_tickets", {"limit": 2})
            await alice.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "Rebooted the printer"})
            await alice.call_tool("search_tickets", {"tenant": "globex"})  # not alice's
            await alice.call_tool("get_ticket_details", {"ticket_id": "not a number"})  # rejected by the schema
            await alice.call_tool("no_such_tool", {})
        async with served.client("bob") as bob:
            await bob.call_tool("update_ticket", {"tenant": "globex", "ticket_id": 1001, "status": "New"})
            await bob.call_tool("list_board_statuses", {"board": "Alerts"})  # default tenant acme: not bob's
        async with httpx2.AsyncClient() as raw:
            await raw.post(served.messages_url, headers=bearer(TOKENS["alice"] + "x"))
            await raw.post(served.url, json=INITIALIZE, headers={**MCP_HEADERS, **bearer(TOKENS["bob"][::-1])})
    lines = served.audit()
    assert [line["principal"] for line in lines] == ["alice"] * 5 + ["bob"] * 2
    assert [line["outcome"] for line in lines] == ["ok", "ok", "refused", "refused", "refused", "ok", "refused"]
    captured = capfd.readouterr()
    texts = {"audit": served.audit_path.read_text(), "log": caplog.text, "out": captured.out, "err": captured.err}
    assert "POST" in caplog.text or "POST" in captured.err  # uvicorn's access lines were captured
    for secret in secrets_in_play():
        for where, text in texts.items():
            assert secret not in text, f"a secret in {where}"
