"""Benchmarks of the tools: ConnectWise requests per call (cold and warm cache), bytes returned to the model and
the latency the server adds over the sandbox's own round trips (in-memory MCP client, in-process sandbox).

Added latency is a call's wall time minus the time a sandbox request was in flight, minus the MCP SDK's own
round trip for the same result (an echo tool with the same output schema, measured alongside): what remains
is our code - validation, conditions, caches, result models, audit line. The tenant's request budget is set
to its highest and calls are paced (outside the timings) so that it never makes a request wait: waiting for
the budget is measured in its own section (bench/budget.py), not charged to our code here.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import httpx2
from mcp import Client
from mcp.server import MCPServer
from mcp.types import CallToolResult, TextContent

from mcp_server_connectwise.audit import read_calls
from mcp_server_connectwise.config import AppConfig, AuditConfig, TenantConfig
from mcp_server_connectwise.config.models import MAX_REQUESTS_PER_MINUTE
from mcp_server_connectwise.connectwise.ratelimit import default_burst
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.server import build_server
from mcp_server_connectwise.toolsets import REGISTRY
from mcp_server_connectwise.toolsets.definition import with_next_steps

TENANT = "bench"
# The highest budget a tenant may have; a call waits after the last one for the tokens its requests took.
REQUESTS_PER_MINUTE = MAX_REQUESTS_PER_MINUTE


class TimedTransport(httpx2.AsyncBaseTransport):
    """The sandbox transport, remembering when each request was in flight."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.intervals: list[tuple[float, float]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        started = time.perf_counter()
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.intervals.append((started, time.perf_counter()))

    def busy_seconds(self) -> float:
        """Time with at least one request in flight (concurrent requests count once)."""
        total, reach = 0.0, float("-inf")
        for start, end in sorted(self.intervals):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total


def _open_tickets(app: Any, *, time_allowed: bool) -> list[int]:
    statuses = app.state.store["statuses"]
    return [
        t["id"]
        for t in app.state.store["tickets"].values()
        if t["board"]["name"] == "Service Desk"
        and not t["closedFlag"]
        and bool(statuses[t["status"]["id"]]["timeEntryNotAllowed"]) is not time_allowed
    ]


def _devices(app: Any, *, attached: bool) -> list[tuple[int, int]]:
    """(ticket, configuration of its company) pairs, attached or not."""
    store = app.state.store
    links = store.ticket_configurations
    by_company: dict[int, list[int]] = {}
    for device in store["configurations"].values():
        by_company.setdefault(device["company"]["id"], []).append(device["id"])
    if attached:
        return [(ticket, device) for ticket, devices in sorted(links.items()) for device in devices]
    return [
        (ticket["id"], devices[0])
        for ticket in store["tickets"].values()
        if (devices := [d for d in by_company.get(ticket["company"]["id"], []) if d not in links.get(ticket["id"], [])])
    ]


def _acme_contact_email(app: Any) -> str:
    store = app.state.store
    acme = next(c["id"] for c in store["companies"].values() if c["identifier"] == "ACME")
    contact = next(c for c in store["contacts"].values() if c["company"]["id"] == acme)
    return next(i["value"] for i in contact["communicationItems"] if i["communicationType"] == "Email")


def _open_time_entry(app: Any) -> int:
    """A seeded time entry its member may still change (its time sheet is open)."""
    return next(e["id"] for e in app.state.store["timeEntries"].values() if e["status"] == "Open")


def _scenarios(app: Any) -> dict[str, Callable[[int], dict]]:
    """Arguments for the n-th call of each tool; writes vary so that every call changes something."""
    tickets = _open_tickets(app, time_allowed=True)
    unattached, attached, email = _devices(app, attached=False), _devices(app, attached=True), _acme_contact_email(app)
    entry = _open_time_entry(app)
    return {
        # Summaries share too few words to be duplicates of each other: every call is checked, then created.
        "create_ticket": lambda n: {"company": "ACME", "contact": email, "summary": f"Benchmark {n} alpha{n} beta{n}"},
        "attach_configuration": lambda n: {
            "ticket_id": unattached[n % len(unattached)][0],
            "configuration": unattached[n % len(unattached)][1],
        },
        "detach_configuration": lambda n: {
            "ticket_id": attached[n % len(attached)][0],
            "configuration": attached[n % len(attached)][1],
        },
        "search_tickets": lambda n: {"status": ["New", "Assigned", "In Progress"]},
        "get_ticket_details": lambda n: {"ticket_id": tickets[n % len(tickets)]},
        "add_ticket_note": lambda n: {"ticket_id": tickets[n % len(tickets)], "text": f"Benchmark note {n}."},
        "update_ticket": lambda n: {"ticket_id": tickets[0], "status": ("Scheduled", "In Progress")[n % 2]},
        "create_time_entry": lambda n: {
            "ticket_id": tickets[n % len(tickets)],
            # A start of its own per call: the same entry twice is refused as a duplicate.
            "start": (datetime(2026, 11, 2, 9, tzinfo=timezone.utc) + timedelta(minutes=15 * n)).isoformat(),
            "hours": 0.25,
        },
        "list_board_statuses": lambda n: {"board": "Service Desk"},
        # At the clock's now every seeded deadline has passed: every open ticket with one is found.
        "find_sla_risk": lambda n: {},
        # The seed's last full week (its "now" is Monday 2026-11-02).
        "list_time_entries": lambda n: {"member": "jsmith", "date_from": "2026-10-26"},
        "update_time_entry": lambda n: {"entry_id": entry, "notes": f"Benchmark correction {n}."},
        "search_companies": lambda n: {"type": "Client"},
        "get_company": lambda n: {"company": "ACME"},
        "search_contacts": lambda n: {"email": email},
        "get_contact": lambda n: {"contact_id": (3, 4, 5, 6)[n % 4]},
        "list_agreements": lambda n: {"company": "ACME"},
    }


# Devices get_company is measured on: ACME's, made up to this many.
COMPANY_DEVICES = 50


def _give_acme_devices(app: Any) -> None:
    store, writer = app.state.store, app.state.writer
    acme = next(c["id"] for c in store["companies"].values() if c["identifier"] == "ACME")
    have = sum(1 for c in store["configurations"].values() if c["company"]["id"] == acme)
    for n in range(have, COMPANY_DEVICES):
        device = {"name": f"ACME-WS-{100 + n}", "type": {"name": "Managed Workstation"}, "company": {"id": acme}}
        writer.create("configurations", device, "jsmith")


# What a tool's benchmark needs in the sandbox beyond the seed.
_SETUP: dict[str, Callable[[Any], None]] = {"get_company": _give_acme_devices}


def _server(
    directory: Path, tickets: int, requests_per_minute: int = REQUESTS_PER_MINUTE
) -> tuple[Any, Any, TimedTransport, Path]:
    sandbox = sandbox_tenant(
        TENANT, create_app(SandboxSettings(tickets=tickets)), requests_per_minute=requests_per_minute
    )
    transport = TimedTransport(sandbox.transport)
    audit_path = directory / f"audit-{time.perf_counter_ns()}.jsonl"
    config = AppConfig(default_tenant=TENANT, audit=AuditConfig(path=audit_path), tenants={TENANT: sandbox.config})
    server = build_server(config, transports={TENANT: transport}, credentials={TENANT: sandbox.credentials})
    return server, sandbox.app, transport, audit_path


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def _sdk_round_trip_ms(name: str, result: CallToolResult, calls: int) -> float:
    """Median in-memory MCP round trip of a tool that only returns `result` (same name and output schema)."""
    model = with_next_steps(REGISTRY.by_name[name].result_model)
    echo_server = MCPServer("sdk-baseline")

    async def echo() -> CallToolResult:
        return result

    echo.__annotations__["return"] = Annotated[CallToolResult, model]  # the model is only known at run time
    echo_server.add_tool(echo, name=name)
    samples = []
    async with Client(echo_server) as client:
        for _ in range(calls):
            started = time.perf_counter()
            await client.call_tool(name, {})
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def _bench_tool(directory: Path, name: str, calls: int, tickets: int) -> list[tuple[str, str]]:
    server, app, transport, audit_path = _server(directory, tickets)
    if name in _SETUP:
        _SETUP[name](app)
    arguments = _scenarios(app)[name]
    # The in-process sandbox's seeded data is a heap our server never has in production: keep the garbage
    # collector from scanning it on our time (its pauses would be charged to the server).
    gc.collect()
    gc.freeze()
    try:
        return await _measure_tool(server, transport, audit_path, name, arguments, calls)
    finally:
        gc.unfreeze()


def _text(result: CallToolResult) -> str:
    """The text of a tool result: our tools answer, and fail, with one text item (the JSON or the message)."""
    content = result.content[0]
    assert isinstance(content, TextContent), f"a tool answered with {content.type} content, not text"
    return content.text


async def _measure_tool(
    server: Any, transport: TimedTransport, audit_path: Path, name: str, arguments: Any, calls: int
) -> list[tuple[str, str]]:
    beyond_sandbox_ms: list[float] = []
    async with Client(server) as client:
        for n in range(calls + 2):
            # The budget's bucket refilled with what the last call took, so that no request waits for it.
            await asyncio.sleep(len(transport.intervals) / (REQUESTS_PER_MINUTE / 60) * 1.1)
            transport.intervals.clear()
            started = time.perf_counter()
            result = await client.call_tool(name, arguments(n))
            elapsed = time.perf_counter() - started
            if result.is_error:
                raise RuntimeError(f"{name} failed in the benchmark: {_text(result)}")
            if n >= 2:  # the first two calls measure the cold and warm request counts
                beyond_sandbox_ms.append((elapsed - transport.busy_seconds()) * 1000)
    audited = read_calls(audit_path)
    cold, warm = (len(line["requests"]) for line in audited[:2])
    if waited := sum(request.get("budget_wait_ms", 0.0) for line in audited for request in line["requests"]):
        raise RuntimeError(f"{name}: requests waited {waited:.0f} ms for the budget; pace the calls more")
    size = len(_text(result).encode("utf-8"))
    sdk_ms = await _sdk_round_trip_ms(name, result, calls)
    added_ms = [sample - sdk_ms for sample in beyond_sandbox_ms]
    return [
        (f"{name}: ConnectWise requests per call, cold / warm cache", f"{cold} / {warm}"),
        (f"{name}: bytes returned to the model (text content)", f"{size:,}"),
        (f"{name}: MCP SDK in-memory round trip for the same result, p50", f"{sdk_ms:.2f} ms"),
        (
            f"{name}: added latency over the sandbox and the SDK, p50 / p99",
            f"{statistics.median(added_ms):.2f} / {_percentile(added_ms, 0.99):.2f} ms",
        ),
    ]


async def _bench_sla_pages(directory: Path, tickets: int) -> list[tuple[str, str]]:
    """How many tickets one find_sla_risk call found, and the requests that read them: one per page."""
    server, _app, _transport, audit_path = _server(directory, tickets)
    async with Client(server) as client:
        await client.call_tool("find_sla_risk", {})  # the board lists, cached
        result = await client.call_tool("find_sla_risk", {})
    answer = result.structured_content or {}
    found = answer["breached"] + answer["due_soon"] + answer["paused"]
    [line] = read_calls(audit_path)[1:]
    pages = sum(1 for request in line["requests"] if request["path"] == "/service/tickets")
    return [("find_sla_risk: tickets found / requests that read them (warm)", f"{found:,} / {pages}")]


async def _bench_summary(directory: Path, tickets: int) -> list[tuple[str, str]]:
    """service_desk_summary over the sandbox's last 30 days: its requests, cold and warm, and its wall time at
    the highest request budget and at the default one (where the budget paces its counts)."""
    arguments = {"since": "2026-10-03T17:00:00Z", "until": "2026-11-02T17:00:00Z"}
    default_budget = TenantConfig.model_fields["requests_per_minute"].default
    rows: list[tuple[str, str]] = []
    for budget in (REQUESTS_PER_MINUTE, default_budget):
        server, _app, _transport, audit_path = _server(directory, tickets, budget)
        wall_ms = []
        async with Client(server) as client:
            for _ in range(2):  # cold, then warm
                await asyncio.sleep(default_burst(budget) / (budget / 60) * 1.1)  # the budget's bucket full again
                started = time.perf_counter()
                result = await client.call_tool("service_desk_summary", arguments)
                wall_ms.append((time.perf_counter() - started) * 1000)
                if result.is_error:
                    raise RuntimeError(f"service_desk_summary failed in the benchmark: {_text(result)}")
        cold, warm = (line["requests"] for line in read_calls(audit_path))
        if budget == REQUESTS_PER_MINUTE:
            counts = sum(1 for request in warm if request["path"].endswith("/count"))
            rows += [
                (
                    "service_desk_summary (30 days): ConnectWise requests per call, cold / warm cache",
                    f"{len(cold)} / {len(warm)} ({counts} counts, {len(warm) - counts} page of tickets closed)",
                ),
                (
                    "service_desk_summary: bytes returned to the model (text content)",
                    f"{len(_text(result).encode('utf-8')):,}",
                ),
            ]
        rows.append(
            (
                f"service_desk_summary: wall time cold / warm, budget {budget:,}/min",
                f"{wall_ms[0]:.0f} / {wall_ms[1]:.0f} ms",
            )
        )
    return rows


async def bench_tools(quick: bool) -> list[tuple[str, str]]:
    calls = 30 if quick else 300
    tickets = 200 if quick else 5_000
    rows: list[tuple[str, str]] = [
        ("calls per tool (after one cold and one warm call)", str(calls)),
        ("sandbox tickets", f"{tickets:,}"),
    ]
    with tempfile.TemporaryDirectory(prefix="connectwise-bench-") as directory:
        for name in (
            "search_tickets",
            "get_ticket_details",
            "add_ticket_note",
            "update_ticket",
            "create_time_entry",
            "list_time_entries",
            "update_time_entry",
            "list_board_statuses",
            "create_ticket",
            "attach_configuration",
            "detach_configuration",
            "find_sla_risk",
            "search_companies",
            "get_company",
            "search_contacts",
            "get_contact",
            "list_agreements",
        ):
            rows += await _bench_tool(Path(directory), name, calls, tickets)
        rows += await _bench_sla_pages(Path(directory), tickets)
        rows += await _bench_summary(Path(directory), tickets)
    return rows
