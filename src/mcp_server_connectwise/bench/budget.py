"""Call latency under the rate budget: concurrent agents against one server, a sandbox with a fixed latency, and
the tenant's token bucket (`requests_per_minute`, a burst of a second's worth) between them.

Four MCP client sessions (the legacy protocol era, so each is a session of its own and the budget serves them
round-robin) call search_tickets and get_ticket_details in turn, warm cache, for a bounded time. Reported: the
calls made, their latency, the calls answered with an error (a call the budget cannot serve within its deadline
is answered at once with "retry in N s"), and the rate-budget accuracy - the most requests that started in any
window of the run, timed where each request enters the sandbox and counted against the sandbox's request log.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mcp import Client

from mcp_server_connectwise.audit import read_calls
from mcp_server_connectwise.bench.tools import TimedTransport, _open_tickets, _percentile, _text
from mcp_server_connectwise.config import AppConfig, AuditConfig
from mcp_server_connectwise.connectwise.ratelimit import default_burst
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.server import build_server

TENANT = "bench"
AGENTS = 4
LATENCY_MS = 20.0
REQUESTS_PER_MINUTE = 600


def max_in_window(starts: list[float], window: float) -> int:
    """The most of `starts` (seconds) that fall in any half-open interval of `window` seconds."""
    ordered = sorted(starts)
    best, first = 0, 0
    for last, started in enumerate(ordered):
        while started - ordered[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


async def _agent(
    server: Any, number: int, tickets: list[int], ready: asyncio.Barrier, stop_at: list[float]
) -> list[tuple[str, float, str | None]]:
    """One agent's calls until the run ends: (tool, seconds, the error text or None)."""
    calls: list[tuple[str, float, str | None]] = []
    async with Client(server, mode="legacy") as client:
        await ready.wait()
        turn = 0
        while time.perf_counter() < stop_at[0]:
            turn += 1  # the agents alternate the two tools, out of step with each other
            name, arguments = (
                ("search_tickets", {"status": ["New", "Assigned", "In Progress"]})
                if (number + turn) % 2
                else ("get_ticket_details", {"ticket_id": tickets[(number + AGENTS * turn) % len(tickets)]})
            )
            started = time.perf_counter()
            result = await client.call_tool(name, arguments)
            calls.append((name, time.perf_counter() - started, _text(result) if result.is_error else None))
    return calls


async def bench_budget(quick: bool) -> list[tuple[str, str]]:
    duration = 10.0 if quick else 60.0
    window = min(60.0, duration)
    tickets = 500 if quick else 2_000
    burst = default_burst(REQUESTS_PER_MINUTE)
    bound = round(REQUESTS_PER_MINUTE * window / 60) + burst

    sandbox = sandbox_tenant(
        TENANT,
        create_app(SandboxSettings(tickets=tickets, latency_ms=LATENCY_MS)),
        requests_per_minute=REQUESTS_PER_MINUTE,
    )
    transport = TimedTransport(sandbox.transport)
    with tempfile.TemporaryDirectory(prefix="connectwise-bench-") as directory:
        audit_path = Path(directory) / "audit.jsonl"
        config = AppConfig(default_tenant=TENANT, audit=AuditConfig(path=audit_path), tenants={TENANT: sandbox.config})
        deadline = config.server.call_deadline_seconds
        server = build_server(config, transports={TENANT: transport}, credentials={TENANT: sandbox.credentials})
        open_tickets = _open_tickets(sandbox.app, time_allowed=True)

        # Warm the caches (statuses, boards, members) with one call of each tool, then let the burst refill.
        async with Client(server, mode="legacy") as client:
            for name, arguments in (
                ("search_tickets", {"status": ["New", "Assigned", "In Progress"]}),
                ("get_ticket_details", {"ticket_id": open_tickets[0]}),
            ):
                result = await client.call_tool(name, arguments)
                if result.is_error:
                    raise RuntimeError(f"{name} failed in the benchmark: {_text(result)}")
        await asyncio.sleep(burst / (REQUESTS_PER_MINUTE / 60))
        warm_calls = len(read_calls(audit_path))

        ready = asyncio.Barrier(AGENTS + 1)
        stop_at = [float("inf")]
        agents = [
            asyncio.ensure_future(_agent(server, number, open_tickets, ready, stop_at)) for number in range(AGENTS)
        ]
        await ready.wait()  # every session open before the clock starts
        started = time.perf_counter()
        stop_at[0] = started + duration
        calls = [call for agent in await asyncio.gather(*agents) for call in agent]
        elapsed = time.perf_counter() - started
        audited = read_calls(audit_path)[warm_calls:]

    logged = len(sandbox.app.state.request_log)
    if logged != len(transport.intervals):
        raise RuntimeError(f"the sandbox logged {logged} requests, the transport timed {len(transport.intervals)}")
    starts = [start for start, _end in transport.intervals]
    seconds = [latency for _name, latency, _error in calls]
    errors = [error for _name, _latency, error in calls if error is not None]
    waits = [request.get("budget_wait_ms", 0.0) for line in audited for request in line["requests"]]
    counts = {name: sum(call[0] == name for call in calls) for name in ("search_tickets", "get_ticket_details")}
    most = max_in_window(starts, window)
    requests = sum(len(line["requests"]) for line in audited)
    rows = [
        (
            "setup",
            f"{AGENTS} MCP sessions (legacy era) on one server, sandbox latency {LATENCY_MS:g} ms, "
            f"{sandbox.config.requests_per_minute} requests/min (burst {burst}), {duration:g} s, "
            f"{tickets:,} tickets, warm cache",
        ),
        (
            "calls made (search_tickets / get_ticket_details)",
            f"{len(calls):,} ({counts['search_tickets']:,} / {counts['get_ticket_details']:,}), "
            f"{len(calls) / elapsed:.1f} calls/s",
        ),
        ("ConnectWise requests of those calls", f"{requests:,} ({requests / elapsed:.1f}/s)"),
        (
            "call latency p50 / p99 / max",
            f"{statistics.median(seconds) * 1000:.0f} / {_percentile(seconds, 0.99) * 1000:.0f} / "
            f"{max(seconds) * 1000:.0f} ms",
        ),
        (
            "wait for the budget per ConnectWise request p50 / p99 / max (audit log)",
            f"{statistics.median(waits):.0f} / {_percentile(waits, 0.99):.0f} / {max(waits):.0f} ms",
        ),
        (
            "calls answered with an error",
            f"{len(errors)}" + (f" (first: {errors[0][:80]!r})" if errors else ""),
        ),
        (
            f"calls over the deadline ({deadline:g} s)",
            f"{sum(latency > deadline for latency in seconds)} (slowest {max(seconds):.2f} s)",
        ),
        (
            f"rate-budget accuracy: most requests started in any {window:g} s (at the sandbox; bound {bound})",
            f"{most} ({'within' if most <= bound else 'OVER'} the bound; {logged:,} requests logged in all)",
        ),
    ]
    return rows
