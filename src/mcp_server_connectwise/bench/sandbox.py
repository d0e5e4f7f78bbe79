"""Benchmarks of the sandbox: seeding time and in-process search throughput."""

from __future__ import annotations

import time

import httpx2

from mcp_server_connectwise.sandbox.app import create_app
from mcp_server_connectwise.sandbox.seed import seed_store
from mcp_server_connectwise.sandbox.settings import SANDBOX_BASE_URL, SandboxSettings
from mcp_server_connectwise.sandbox.store import Store
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant

# A service-desk agent's typical search: open tickets on one board, text match, newest first.
SEARCH = {
    "conditions": 'closedFlag = false and board/name = "Service Desk" and summary contains "e"',
    "orderBy": "_info/lastUpdated desc",
    "pageSize": "25",
    "fields": "id,summary,status/name,company/identifier,_info/lastUpdated",
}


def _seconds_to_seed(tickets: int) -> float:
    started = time.perf_counter()
    seed_store(Store(SANDBOX_BASE_URL), SandboxSettings(tickets=tickets))
    return time.perf_counter() - started


async def bench_sandbox(quick: bool) -> list[tuple[str, str]]:
    """(metric, value) rows: seeding time for 100k tickets, requests/second of a 10k-ticket search."""
    seed_tickets = 10_000 if quick else 100_000
    search_tickets = 2_000 if quick else 10_000
    requests = 50 if quick else 300
    results = [(f"sandbox seed {seed_tickets:,} tickets", f"{_seconds_to_seed(seed_tickets):.2f} s")]

    sandbox = sandbox_tenant("bench", create_app(SandboxSettings(tickets=search_tickets)))
    base_url = sandbox.config.base_url
    assert base_url is not None  # a sandbox tenant is configured by base_url, never by site
    async with httpx2.AsyncClient(
        transport=sandbox.transport,
        base_url=base_url,
        auth=sandbox.basic_auth,
        headers={"clientId": sandbox.config.client_id},
    ) as client:
        response = await client.get("/service/tickets", params=SEARCH)
        response.raise_for_status()
        started = time.perf_counter()
        for _ in range(requests):
            (await client.get("/service/tickets", params=SEARCH)).raise_for_status()
        elapsed = time.perf_counter() - started
    results.append(
        (
            f"sandbox search on {search_tickets:,} tickets (conditions+orderBy+fields, in-process)",
            f"{requests / elapsed:.0f} req/s",
        )
    )
    return results
