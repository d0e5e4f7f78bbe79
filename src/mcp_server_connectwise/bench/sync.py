"""The RMM sync: ConnectWise requests and wall time of one `sync_configurations` call for 200 devices of a company,
on a cold cache (a fresh server: companies and configuration types not yet read) and a warm one, through an
in-memory MCP client against the in-process sandbox.

The tenant has the highest request budget a config allows; 200 writes still take its pace (200 requests at
5,000/min after a burst of 10: about 2.3 s). At the default 600/min the same writes take about 20 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from mcp import Client

from mcp_server_connectwise.audit import read_calls
from mcp_server_connectwise.config import AppConfig, AuditConfig
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.server import build_server
from mcp_server_connectwise.services.configuration_sync import MAX_DEVICES

from .tools import REQUESTS_PER_MINUTE, TENANT


def _devices(network: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"ACME-RMM-{n:03d}",
            "type": "Managed Workstation",
            "serial_number": f"RMM{n:07d}",
            "ip_address": f"10.{network}.{n // 250}.{n % 250}",
            "os_type": "Windows 11 Pro",
            "last_login_name": f"ACME\\user{n}",
        }
        for n in range(MAX_DEVICES)
    ]


async def _calls(app: Any, audit_path: Path, batches: list[list[dict[str, Any]]]) -> list[tuple[float, dict]]:
    """Each batch synced by one call of a fresh server (its first call is on a cold cache): its wall time and
    its outcome counts."""
    sandbox = sandbox_tenant(TENANT, app, requests_per_minute=REQUESTS_PER_MINUTE)
    config = AppConfig(default_tenant=TENANT, audit=AuditConfig(path=audit_path), tenants={TENANT: sandbox.config})
    server = build_server(config, transports={TENANT: sandbox.transport}, credentials={TENANT: sandbox.credentials})
    timed = []
    async with Client(server) as client:
        for devices in batches:
            started = time.perf_counter()
            result = await client.call_tool("sync_configurations", {"company": "ACME", "devices": devices})
            elapsed = time.perf_counter() - started
            if result.is_error or not result.structured_content or result.structured_content["to_repeat"]:
                raise RuntimeError(f"sync_configurations did not finish in the benchmark: {result.content[0]}")
            timed.append((elapsed, result.structured_content["counts"]))
    return timed


async def bench_sync(quick: bool) -> list[tuple[str, str]]:
    """`quick` changes nothing: the figure is of 200 devices, what one call takes."""
    first, moved = _devices(2), _devices(3)
    with tempfile.TemporaryDirectory(prefix="connectwise-bench-") as directory:
        audit_path = Path(directory) / "audit.jsonl"
        app = create_app(SandboxSettings(tickets=200))
        timed = await _calls(app, audit_path, [first, first, moved])
        timed += await _calls(app, audit_path, [moved])  # a new server: cold, with nothing to write
        requests = [len(line["requests"]) for line in read_calls(audit_path)]
    cases = (
        "200 new devices, cold cache",
        "the same 200 again, warm cache",
        "200 with a new IP address each, warm cache",
        "200 unchanged, cold cache",
    )
    rows = [("sync_configurations: devices per call", f"{MAX_DEVICES}")]
    for case, (elapsed, counts), count in zip(cases, timed, requests, strict=True):
        outcomes = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
        rows.append((f"sync_configurations, {case}: ConnectWise requests, wall time", f"{count}, {elapsed:.2f} s"))
        rows.append((f"sync_configurations, {case}: outcomes", outcomes))
    return rows
