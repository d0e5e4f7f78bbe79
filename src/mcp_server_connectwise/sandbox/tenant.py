"""A tenant answered by an in-process sandbox: how the demo, the benchmarks and the tests reach one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2
from starlette.applications import Starlette

from mcp_server_connectwise.config import AlertsConfig, TenantConfig
from mcp_server_connectwise.connectwise import ApiCredentials
from mcp_server_connectwise.sandbox.app import create_app
from mcp_server_connectwise.sandbox.settings import SANDBOX_BASE_URL

# The sandbox accepts any clientId; the config refuses what is no GUID, or a placeholder of zeros.
CLIENT_ID = "6f1d3c2a-8b4e-4f7a-9c5d-2e8b7a1f0c93"
MEMBER = "jsmith"  # a technician in the sandbox's seed data, so that time entries have someone to log them
DEFAULT_BOARD = "Service Desk"  # a board of the seed data, for tickets created without one
# Alert intake on the seed's alert board, priorities from its priority list.
ALERTS = AlertsConfig(
    board="Alerts",
    status="New",
    close_status="Auto-Closed",
    type="Alert",
    priority={
        "critical": "Priority 1 - Emergency Response",
        "high": "Priority 2 - Quick Response",
        "medium": "Priority 3 - Normal Response",
        "low": "Priority 4 - Schedule Maintenance",
    },
    min_severity="low",
)


@dataclass(frozen=True)
class SandboxTenant:
    """A tenant's config, the transport that carries its requests into `app`, and the sandbox's API keys."""

    config: TenantConfig
    app: Starlette
    transport: httpx2.ASGITransport
    credentials: ApiCredentials

    @property
    def basic_auth(self) -> tuple[str, str]:
        """The Basic auth ConnectWise expects, for a plain HTTP client: `company+publicKey` and the private key."""
        return f"{self.config.company_id}+{self.credentials.public_key}", self.credentials.private_key


def sandbox_tenant(name: str, app: Starlette | None = None, **overrides: Any) -> SandboxTenant:
    """Tenant `name` on `app` (default: a fresh sandbox), as the sandbox's settings allow it in; `overrides`
    replace TenantConfig fields."""
    app = app or create_app()
    settings = app.state.settings
    fields = dict(
        name=name,
        company_id=settings.company,
        client_id=CLIENT_ID,
        base_url=SANDBOX_BASE_URL,
        member=MEMBER,
        default_board=DEFAULT_BOARD,
        alerts=ALERTS,
    )
    return SandboxTenant(
        config=TenantConfig(**(fields | overrides)),
        app=app,
        transport=httpx2.ASGITransport(app=app),
        credentials=ApiCredentials(settings.public_key, settings.private_key),
    )
