"""A plain HTTP client onto an in-process sandbox, as any ConnectWise client would talk to it (Basic auth,
clientId), for the sandbox's own tests."""

from __future__ import annotations

import httpx2
from starlette.applications import Starlette

from mcp_server_connectwise.sandbox import SANDBOX_BASE_URL

AUTH = ("sandbox+sandbox-public", "sandbox-private")


def sandbox_http(app: Starlette, client_id: str = "test") -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=SANDBOX_BASE_URL, auth=AUTH,
                              headers={"clientId": client_id})
