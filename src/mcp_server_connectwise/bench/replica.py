"""One replica of the shared-state benchmark, as a process of its own: the HTTP server `serve --transport http`
runs, for the bench's tenants on a loopback sandbox, sharing the bench's Redis. The sandbox's published keys are
handed in (no keyring), as the demo does.

    python -m mcp_server_connectwise.bench.replica '{"port": ..., "sandbox": ..., "redis": ..., ...}'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mcp_server_connectwise.cli.serve import listen
from mcp_server_connectwise.config import AppConfig, AuditConfig, HttpConfig, Principal, StateConfig, TenantConfig
from mcp_server_connectwise.connectwise import ApiCredentials
from mcp_server_connectwise.sandbox.settings import SandboxSettings
from mcp_server_connectwise.sandbox.tenant import CLIENT_ID
from mcp_server_connectwise.server import Listener, build_network_app

PRINCIPAL = "bench"


def spec(
    port: int, sandbox: str, redis: str, tenants: dict[str, int], token_sha256: str, audit: Path
) -> dict[str, Any]:
    """What a replica is started with: its port, the sandbox's base URL, the Redis URL, each tenant's budget."""
    return dict(port=port, sandbox=sandbox, redis=redis, tenants=tenants, token_sha256=token_sha256, audit=str(audit))


def main(argv: list[str]) -> None:
    given = json.loads(argv[1])
    sandbox = SandboxSettings()
    tenants = {
        name: TenantConfig(
            name=name,
            company_id=sandbox.company,
            client_id=CLIENT_ID,
            base_url=given["sandbox"],
            requests_per_minute=budget,
        )
        for name, budget in given["tenants"].items()
    }
    principal = Principal(name=PRINCIPAL, token_sha256=given["token_sha256"], tenants=tuple(tenants))
    config = AppConfig(
        audit=AuditConfig(path=Path(given["audit"])),
        http=HttpConfig(principals={PRINCIPAL: principal}, max_sessions_per_principal=1000),
        state=StateConfig(url=given["redis"]),
        tenants=tenants,
    )
    listener = Listener("http", "127.0.0.1", given["port"])
    keys = ApiCredentials(sandbox.public_key, sandbox.private_key)
    app = build_network_app(config, listener, credentials={name: keys for name in tenants})
    listen(app, listener, config.http)


if __name__ == "__main__":
    main(sys.argv)
