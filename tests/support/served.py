"""Our network app served by uvicorn on a free loopback port, as `serve` runs it, for tests that speak real HTTP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette

from mcp_server_connectwise.audit import read_calls
from mcp_server_connectwise.config import AppConfig, AuditConfig, HttpConfig, Principal
from mcp_server_connectwise.http_auth import hash_token, new_token
from mcp_server_connectwise.http_guard import uvicorn_config
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.secrets import KeyStore
from mcp_server_connectwise.server import Listener, build_network_app

from support.harness import sandbox_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    """A running server: where it listens, its tenants' sandboxes, its audit file and the principals' tokens."""

    base: str  # http://127.0.0.1:PORT
    listener: Listener
    sandboxes: dict[str, Starlette]
    audit_path: Path
    tokens: dict[str, str] = field(default_factory=dict)
    app: Starlette | None = None  # what uvicorn serves

    @property
    def url(self) -> str:
        return self.listener.url

    def requests(self, tenant: str = "acme") -> list[dict[str, Any]]:
        return self.sandboxes[tenant].state.request_log

    def store(self, tenant: str = "acme") -> Any:
        return self.sandboxes[tenant].state.store

    def audit(self) -> list[dict[str, Any]]:
        return read_calls(self.audit_path) if self.audit_path.exists() else []

    @asynccontextmanager
    async def client(self, principal: str, **options: Any) -> AsyncIterator[Client]:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {self.tokens[principal]}"}) as http:
            async with Client(streamable_http_client(self.url, http_client=http), **options) as client:
                yield client


@asynccontextmanager
async def serving(
    tmp_path: Path,
    principals: dict[str, dict[str, Any]],
    *,
    tenants: tuple[str, ...] = ("acme",),
    http: dict[str, Any] | None = None,
    audit: AuditConfig | None = None,
    stateless: bool = False,
    keys: bool = True,
    **options: Any,
) -> AsyncIterator[Served]:
    """build_network_app over one sandbox per tenant (its keys in the keyring unless not `keys`) for
    `principals` (name -> Principal fields besides the token; each gets a fresh token), run by uvicorn."""
    sandboxes = {name: sandbox_tenant(name, sandbox_app()) for name in tenants}
    if keys:
        for name, sandbox in sandboxes.items():
            KeyStore().set(name, sandbox.credentials)
    tokens = {name: new_token() for name in principals}
    config = AppConfig(
        default_tenant=tenants[0],
        audit=audit or AuditConfig(path=tmp_path / "audit.jsonl"),
        http=HttpConfig(
            principals={
                name: Principal(name=name, token_sha256=hash_token(tokens[name]), **fields)
                for name, fields in principals.items()
            },
            **(http or {}),
        ),
        tenants={name: sandbox.config for name, sandbox in sandboxes.items()},
    )
    listener = Listener("http", "127.0.0.1", free_port(), stateless=stateless)
    transports = {name: sandbox.transport for name, sandbox in sandboxes.items()}
    app = build_network_app(config, listener, transports=transports, **options)
    server = uvicorn.Server(uvicorn_config(app, listener.host, listener.port, config.http))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # surface a start-up failure
            await asyncio.sleep(0.01)
        yield Served(
            f"http://127.0.0.1:{listener.port}",
            listener,
            {name: sandbox.app for name, sandbox in sandboxes.items()},
            config.audit.path,
            tokens,
            app,
        )
    finally:
        server.should_exit = True
        await task
