"""An alert storm: many reports of a few alerts, concurrently, through report_alert (in-memory MCP client,
in-process sandbox). The reports carry `occurred_at` spread over a minute of simulated time, so coalescing
decides as it would over that minute however fast the storm runs; each key's last report clears it.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mcp import Client

from mcp_server_connectwise.audit import read_calls
from mcp_server_connectwise.config import AppConfig, AuditConfig
from mcp_server_connectwise.config.models import MAX_REQUESTS_PER_MINUTE
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.server import build_server

TENANT = "bench"
SIMULATED_SECONDS = 60
REPORTERS = 20  # reports in flight at once: several monitors and an RMM's retries


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _storm(alerts: int, keys: int, companies: list[str]) -> list[dict]:
    start = datetime.now(timezone.utc) - timedelta(seconds=SIMULATED_SECONDS)
    reports = []
    for n in range(alerts):
        key = n % keys
        last_of_key = n >= alerts - keys
        reports.append(
            {
                "source": "bench-monitor",
                "alert_id": f"check-{key}",
                "state": "cleared" if last_of_key else "raised",
                "severity": "high",
                "company": companies[key % len(companies)],
                "summary": f"Check {key} failing",
                "occurred_at": (start + timedelta(seconds=SIMULATED_SECONDS * n / alerts)).isoformat(),
            }
        )
    return reports


async def bench_alerts(quick: bool) -> list[tuple[str, str]]:
    alerts, keys = (200, 10) if quick else (1_000, 50)
    app = create_app(SandboxSettings(tickets=200))
    companies = sorted(c["identifier"] for c in app.state.store["companies"].values())[1:]
    sandbox = sandbox_tenant(TENANT, app, requests_per_minute=MAX_REQUESTS_PER_MINUTE)
    with tempfile.TemporaryDirectory(prefix="connectwise-bench-") as directory:
        audit_path = Path(directory) / "audit.jsonl"
        config = AppConfig(default_tenant=TENANT, audit=AuditConfig(path=audit_path), tenants={TENANT: sandbox.config})
        server = build_server(config, transports={TENANT: sandbox.transport}, credentials={TENANT: sandbox.credentials})
        notes_before = len(app.state.store["notes"])
        latencies: list[float] = []
        gate = asyncio.Semaphore(REPORTERS)
        async with Client(server) as client:

            async def report(arguments: dict) -> None:
                async with gate:
                    started = time.perf_counter()
                    result = await client.call_tool("report_alert", arguments)
                    latencies.append((time.perf_counter() - started) * 1000)
                    if result.is_error:
                        raise RuntimeError(f"report_alert failed in the benchmark: {result.content}")

            started = time.perf_counter()
            await asyncio.gather(*(report(arguments) for arguments in _storm(alerts, keys, companies)))
            wall = time.perf_counter() - started
        lines = read_calls(audit_path)
    store = app.state.store
    tickets = [t for t in store["tickets"].values() if str(t.get("externalXRef", "")).startswith("bench-monitor:")]
    requests = sum(len(line["requests"]) for line in lines)
    notes = len(store["notes"]) - notes_before
    return [
        (
            "alert storm: reports / keys / concurrent reporters / simulated time",
            f"{alerts:,} / {keys} / {REPORTERS} / {SIMULATED_SECONDS} s",
        ),
        ("tickets created (one per key)", f"{len(tickets)}"),
        ("notes written (first notes, repeats coalesced per 15 min, clears)", f"{notes:,}"),
        ("tickets closed by the clears", f"{sum(bool(t.get('closedFlag')) for t in tickets)}"),
        ("ConnectWise requests per report", f"{requests / alerts:.2f}"),
        (
            "latency per report, p50 / p99",
            f"{statistics.median(latencies):.1f} / {_percentile(latencies, 0.99):.1f} ms",
        ),
        ("wall time of the storm", f"{wall:.1f} s"),
    ]
