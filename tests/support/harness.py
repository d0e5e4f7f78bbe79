"""The harness the server, tool and service tests share: our real server over in-process sandboxes.

Each tenant gets its own sandbox (its own store and request log); its API keys go into the (in-memory,
see conftest) keyring, so the server finds them exactly as in production. Nothing of our own is mocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.server import MCPServer
from starlette.applications import Starlette

from mcp_server_connectwise.audit import read_calls
from mcp_server_connectwise.config import AppConfig, AuditConfig, TenantConfig
from mcp_server_connectwise.connectwise import ApiCredentials, ClientSettings, ConnectWiseClient
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.tenant import SandboxTenant, sandbox_tenant
from mcp_server_connectwise.secrets import KeyStore
from mcp_server_connectwise.server import build_server
from mcp_server_connectwise.services.catalog import Catalog
from mcp_server_connectwise.services.tenancy import Tenants, TenantSession

SANDBOX = SandboxSettings(tickets=200)  # small and fast; the same seed every time


# HTTP methods that write: a refusal must send none of them.
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def writes(requests: list[dict]) -> list[dict]:
    """The writes among sandbox requests (a harness's `requests()`, or a part of them)."""
    return [request for request in requests if request["method"] in WRITE_METHODS]


def sandbox_app(**overrides: Any) -> Starlette:
    return create_app(SandboxSettings(**{**SANDBOX.__dict__, **overrides}))


def tenant_config(name: str, **overrides: Any) -> TenantConfig:
    return sandbox_tenant(name, sandbox_app(), **overrides).config


def store_keys(tenant: str, private_key: str = SANDBOX.private_key) -> None:
    KeyStore().set(tenant, ApiCredentials(SANDBOX.public_key, private_key))


@dataclass
class Harness:
    server: MCPServer
    sandboxes: dict[str, Starlette]
    audit_path: Path
    calls: list[str] = field(default_factory=list)

    def audit(self) -> list[dict]:
        return read_calls(self.audit_path) if self.audit_path.exists() else []

    def requests(self, tenant: str = "acme") -> list[dict]:
        """The sandbox's log of every HTTP request it answered for `tenant`."""
        return self.sandboxes[tenant].state.request_log

    def store(self, tenant: str = "acme") -> Any:
        return self.sandboxes[tenant].state.store

    @asynccontextmanager
    async def client(self, **options: Any) -> AsyncIterator[Client]:
        # Opened per test (not in a yield fixture): see the SDK notes on pytest-asyncio teardown.
        async with Client(self.server, raise_exceptions=True, **options) as client:
            yield client


def make_harness(
    tmp_path: Path,
    tenants: dict[str, dict] | None = None,
    *,
    default_tenant: str | None = "acme",
    sandbox_settings: dict[str, SandboxSettings] | None = None,
    wrap: Callable[[httpx2.AsyncBaseTransport], httpx2.AsyncBaseTransport] | None = None,
    **build_options: Any,
) -> Harness:
    """A server over one sandbox per tenant (default: one tenant `acme`); `tenants` maps names to config overrides,
    `sandbox_settings` names to their sandbox's settings (default: SANDBOX); `wrap` puts a transport of the test's
    in front of each sandbox."""
    tenants = tenants if tenants is not None else {"acme": {}}
    settings_of = sandbox_settings or {}
    sandboxes = {
        name: sandbox_tenant(name, create_app(settings_of.get(name, SANDBOX)), **overrides)
        for name, overrides in tenants.items()
    }
    for name, sandbox in sandboxes.items():
        KeyStore().set(name, sandbox.credentials)
    config = AppConfig(
        default_tenant=default_tenant,
        audit=AuditConfig(path=tmp_path / "audit.jsonl"),
        tenants={name: sandbox.config for name, sandbox in sandboxes.items()},
    )
    transports = {name: wrap(sandbox.transport) if wrap else sandbox.transport for name, sandbox in sandboxes.items()}
    server = build_server(config, transports=transports, **build_options)
    return Harness(server, {name: sandbox.app for name, sandbox in sandboxes.items()}, tmp_path / "audit.jsonl")


def sandbox_client(
    sandbox: SandboxTenant, transport: httpx2.AsyncBaseTransport | None = None, **options: Any
) -> ConnectWiseClient:
    """A client of `sandbox`'s tenant straight onto its sandbox (or `transport`); `options` go to the client."""
    tenant = sandbox.config
    return ConnectWiseClient(
        ClientSettings(
            company_id=tenant.company_id,
            client_id=tenant.client_id,
            base_url=tenant.base_url,
            requests_per_minute=tenant.requests_per_minute,
        ),
        sandbox.credentials,
        transport=transport or sandbox.transport,
        **options,
    )


def sandbox_session(
    app: Starlette | None = None, *, transport: httpx2.AsyncBaseTransport | None = None, **tenant_overrides: Any
) -> TenantSession:
    """A tenant session straight onto a sandbox (or `transport`), for testing service functions without MCP."""
    sandbox = sandbox_tenant("acme", app or sandbox_app(), **tenant_overrides)
    client = sandbox_client(sandbox, transport)
    return TenantSession(sandbox.config, client, Catalog(client))


def sandbox_tenants(tmp_path: Path, sandboxes: dict[str, SandboxTenant]) -> Tenants:
    """The tenants of `sandboxes` (by name), each on its own in-process sandbox, with the audit in `tmp_path`."""
    config = AppConfig(
        audit=AuditConfig(path=tmp_path / "audit.jsonl"), tenants={name: t.config for name, t in sandboxes.items()}
    )
    return Tenants(
        config,
        transports={name: t.transport for name, t in sandboxes.items()},
        credentials={name: t.credentials for name, t in sandboxes.items()},
    )
