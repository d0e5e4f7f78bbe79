"""Replicas sharing state through Redis: a read tool's throughput and latency with 1 and 3 replicas, and the rate
budget's accuracy when three replicas spend one tenant's budget at once.

Each replica is a process of its own (`bench.replica`: the HTTP server on a loopback port, `[state] url` the
bench's own `redis-server`); one sandbox, also a process on loopback, answers every request after a fixed
latency and notes when each arrives. The MCP clients (streamable HTTP, one session each) run in this process,
so on a 2-core machine the replicas, the clients, the sandbox and Redis share both cores.

- throughput: `CALLERS` sessions spread round-robin over the replicas call search_tickets (one request each)
  in turn, their tenants' budgets at the highest (5,000/min each, three tenants: the budget does not bind);
- accuracy: `PACED_CALLERS` sessions over three replicas call search_tickets for one tenant with a budget of
  600/min for a while; the most requests that arrived at the sandbox in any 60 s (any `duration` in a quick
  run) against the token bucket's bound, its rate over the window plus its burst.

Without `redis-server` (Debian's package) the section says so and measures nothing.
"""

from __future__ import annotations

import asyncio
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server_connectwise.bench.budget import max_in_window
from mcp_server_connectwise.bench.callbacks import LOG_EVENTS, ticket_event
from mcp_server_connectwise.bench.processes import (
    LOOPBACK,
    LoopbackSandbox,
    RedisServer,
    free_port,
    redis_server_binary,
    wait_until,
)
from mcp_server_connectwise.bench.replica import spec
from mcp_server_connectwise.bench.tools import _percentile
from mcp_server_connectwise.config import StateConfig
from mcp_server_connectwise.config.models import MAX_REQUESTS_PER_MINUTE
from mcp_server_connectwise.connectwise.ratelimit import default_burst
from mcp_server_connectwise.http_auth import hash_token, new_token
from mcp_server_connectwise.state.redis import RedisState
from mcp_server_connectwise.state.redis.events import RedisEventLog

LATENCY_MS = 20.0
CALLERS = 12
FAST_TENANTS = ("bench-a", "bench-b", "bench-c")
PACED_TENANT = "bench-paced"
PACED_BUDGET = 600
PACED_CALLERS = 24
SEARCH = {"limit": 5}


@contextmanager
def _replicas(count: int, directory: Path, sandbox: str, redis: str, token: str) -> Iterator[list[str]]:
    """`count` replica processes; their MCP URLs."""
    tenants = {name: MAX_REQUESTS_PER_MINUTE for name in FAST_TENANTS} | {PACED_TENANT: PACED_BUDGET}
    ports = [free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mcp_server_connectwise.bench.replica",
                json.dumps(spec(port, sandbox, redis, tenants, hash_token(token), directory / f"audit-{port}.jsonl")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(directory / f"replica-{port}.log").open("w"),
        )
        for port in ports
    ]
    try:
        for port, process in zip(ports, processes, strict=True):
            wait_until(functools.partial(_listening, port, process), f"replica on {port}", 60)
        yield [f"http://{LOOPBACK}:{port}/mcp" for port in ports]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def _listening(port: int, process: subprocess.Popen[bytes]) -> bool:
    import socket

    if process.poll() is not None:
        raise RuntimeError(f"a replica exited with {process.returncode}")
    try:
        socket.create_connection((LOOPBACK, port), timeout=0.2).close()
        return True
    except OSError:
        return False


async def _sessions(stack: AsyncExitStack, urls: list[str], token: str, count: int) -> list[Client]:
    http = await stack.enter_async_context(
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120)
    )
    sessions = [
        await stack.enter_async_context(Client(streamable_http_client(urls[n % len(urls)], http_client=http)))
        for n in range(count)
    ]
    for session in sessions:
        await session.list_tools()  # the SDK's client does so before its first result anyway
    return sessions


async def _throughput(urls: list[str], token: str, calls: int) -> tuple[float, list[float], int]:
    """(calls per second, each call's seconds, calls answered with an error)."""
    async with AsyncExitStack() as stack:
        sessions = await _sessions(stack, urls, token, CALLERS)
        for number, session in enumerate(sessions):  # warm: each tenant's client made on each replica
            await session.call_tool("search_tickets", SEARCH | {"tenant": FAST_TENANTS[number % 3]})
        latencies: list[float] = []
        errors = 0

        async def caller(number: int, session: Client) -> None:
            nonlocal errors
            for turn in range(calls // CALLERS):
                started = time.perf_counter()
                tenant = FAST_TENANTS[(number + turn) % len(FAST_TENANTS)]
                result = await session.call_tool("search_tickets", SEARCH | {"tenant": tenant})
                latencies.append(time.perf_counter() - started)
                errors += bool(result.is_error)

        started = time.perf_counter()
        await asyncio.gather(*(caller(number, session) for number, session in enumerate(sessions)))
        wall = time.perf_counter() - started
    return len(latencies) / wall, latencies, errors


async def _paced(
    urls: list[str], token: str, duration: float, sandbox: LoopbackSandbox
) -> tuple[list[float], int, int]:
    """The sandbox arrival times of the paced tenant's requests, the calls made and those answered with an error."""
    async with AsyncExitStack() as stack:
        sessions = await _sessions(stack, urls, token, PACED_CALLERS)
        await asyncio.sleep(default_burst(PACED_BUDGET) * 60 / PACED_BUDGET)  # the burst whole again
        before = len(sandbox.arrivals())
        stop_at = time.perf_counter() + duration
        calls = errors = 0

        async def caller(session: Client) -> None:
            nonlocal calls, errors
            while time.perf_counter() < stop_at:
                result = await session.call_tool("search_tickets", SEARCH | {"tenant": PACED_TENANT})
                calls += 1
                errors += bool(result.is_error)

        await asyncio.gather(*(caller(session) for session in sessions))
        return sandbox.arrivals()[before:], calls, errors


async def _event_log(redis: RedisServer, events: int) -> list[tuple[str, str]]:
    """Appends to the event log in Redis, one after another (each one script), and the memory they take."""
    state = RedisState(StateConfig(url=redis.url))
    log = RedisEventLog(state.connection)
    client = redis.client()
    try:
        before = client.info("memory")["used_memory"]
        now = datetime.now(timezone.utc)
        started = time.perf_counter()
        for n in range(events):
            await log.append(ticket_event(n, now))
        appends = events / (time.perf_counter() - started)
        used = client.info("memory")["used_memory"] - before
    finally:
        client.close()
        await state.aclose()
    return [
        ("event log on Redis: appends per second (one script each, one client)", f"{appends:,.0f}"),
        (
            f"event log on Redis: memory per {LOG_EVENTS:,} ticket events",
            f"{used * LOG_EVENTS / events / 1024 / 1024:.2f} MiB",
        ),
    ]


def _latency_row(latencies: list[float]) -> str:
    return f"{statistics.median(latencies) * 1000:.1f} / {_percentile(latencies, 0.99) * 1000:.1f} ms"


async def bench_shared_state(quick: bool) -> list[tuple[str, str]]:
    if redis_server_binary() is None:
        return [("shared state (Redis)", "skipped: redis-server is not installed (apt-get install redis-server)")]
    calls = 120 if quick else 1_200
    duration = 8.0 if quick else 70.0
    window = min(60.0, duration)
    token = new_token()
    with tempfile.TemporaryDirectory(prefix="connectwise-bench-") as name:
        directory = Path(name)
        redis = RedisServer(directory / "redis").start()
        sandbox = LoopbackSandbox(directory, LATENCY_MS, tickets=500).start()
        base_url = sandbox.base_url
        try:
            measured = {}
            with _replicas(1, directory, base_url, redis.url, token) as urls:
                measured[1] = await _throughput(urls, token, calls)
            with _replicas(3, directory, base_url, redis.url, token) as urls:
                measured[3] = await _throughput(urls, token, calls)
                arrivals, paced_calls, paced_errors = await _paced(urls, token, duration, sandbox)
            events = await _event_log(redis, LOG_EVENTS // 10 if quick else LOG_EVENTS)
            version = subprocess.run([redis.binary, "--version"], capture_output=True, text=True).stdout.split()[2]
        finally:
            sandbox.stop()
            redis.stop()
    bound = round(PACED_BUDGET * window / 60) + default_burst(PACED_BUDGET)
    most = max_in_window(arrivals, window)
    rows = [
        (
            "setup",
            f"replicas as processes (`serve --transport http`'s app), one redis-server ({version.removeprefix('v=')}), "
            f"a loopback sandbox answering in {LATENCY_MS:g} ms, {CALLERS} MCP sessions (streamable HTTP) round-robin "
            f"over the replicas, search_tickets (1 request a call) over {len(FAST_TENANTS)} tenants at "
            f"{MAX_REQUESTS_PER_MINUTE:,}/min each",
        ),
    ]
    for count, (rate, latencies, errors) in measured.items():
        rows += [
            (f"{count} replica{'s' if count > 1 else ''}: calls/s ({len(latencies):,} calls)", f"{rate:.1f}"),
            (f"{count} replica{'s' if count > 1 else ''}: call latency p50 / p99", _latency_row(latencies)),
            (f"{count} replica{'s' if count > 1 else ''}: calls answered with an error", str(errors)),
        ]
    rows += [
        (
            "rate-budget accuracy: setup",
            f"3 replicas, {PACED_CALLERS} sessions, one tenant at {PACED_BUDGET}/min (burst "
            f"{default_burst(PACED_BUDGET)}), {duration:g} s",
        ),
        ("rate-budget accuracy: calls made / answered with an error", f"{paced_calls:,} / {paced_errors:,}"),
        (
            f"rate-budget accuracy: most requests arriving in any {window:g} s (at the sandbox; bound {bound})",
            f"{most} ({'within' if most <= bound else 'OVER'} the bound; {len(arrivals):,} requests in all)",
        ),
    ]
    return rows + events
