"""The callback receiver and the event log: verified callbacks per second on loopback, the answer time under 50
concurrent deliveries (ConnectWise gives up after 5 s), and the event log's size per 10,000 events.

The server (build_network_app, uvicorn with the transport's limits) and the sandbox it fetches its signing key
from run on 127.0.0.1 in this process; deliveries are the sandbox's ticket entities in ConnectWise's payload
shape, signed with the sandbox's key, sent by one HTTP client in the same process (so client and server share
the machine's cores). The key is fetched once and kept, as in production.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx2
import uvicorn

from mcp_server_connectwise.bench.tools import _percentile
from mcp_server_connectwise.config import AppConfig, AuditConfig, HttpConfig, Principal
from mcp_server_connectwise.connectwise.callbacks import SIGNATURE_HEADER, signature
from mcp_server_connectwise.http_auth import hash_token, new_token
from mcp_server_connectwise.http_guard import uvicorn_config
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.settings import API_ROOT
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.server import Listener, build_network_app
from mcp_server_connectwise.state.events import NewEvent, SqliteEventLog

TENANT = "bench"
CONCURRENT = 50
LOG_EVENTS = 10_000


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _started(server: uvicorn.Server) -> asyncio.Task[None]:
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return task


def _deliveries(app, count: int) -> list[bytes]:
    """`count` signed deliveries of the sandbox's tickets, in ConnectWise's shape."""
    sender = app.state.callbacks
    tickets = list(app.state.store["tickets"].values())
    bodies = []
    for n in range(count):
        ticket = tickets[n % len(tickets)]
        payload = {
            "MessageId": str(uuid.uuid4()),
            "FromUrl": sender.from_url,
            "CompanyId": app.state.settings.company,
            "MemberId": "jsmith",
            "Action": "updated",
            "Type": "ticket",
            "ID": ticket["id"],
            "Entity": json.dumps(ticket, separators=(",", ":")),
            "Metadata": {"key_url": sender.key_url},
            "CallbackObjectRecId": 1,
        }
        bodies.append(json.dumps(payload, separators=(",", ":")).encode())
    return bodies


async def _receiver(quick: bool) -> list[tuple[str, str]]:
    sandbox_port, server_port = _free_port(), _free_port()
    base_url = f"http://127.0.0.1:{sandbox_port}{API_ROOT}"
    sandbox_app = create_app(SandboxSettings(tickets=200), base_url=base_url)
    tenant = sandbox_tenant(TENANT, sandbox_app, base_url=base_url)
    throughput_count, rounds = (300, 4) if quick else (3_000, 20)
    with tempfile.TemporaryDirectory(prefix="connectwise-bench-") as directory:
        principal = Principal(name="bench", token_sha256=hash_token(new_token()), tenants=(TENANT,))
        config = AppConfig(
            default_tenant=TENANT,
            audit=AuditConfig(path=Path(directory) / "audit.jsonl"),
            http=HttpConfig(principals={"bench": principal}),
            tenants={TENANT: tenant.config},
        )
        listener = Listener("http", "127.0.0.1", server_port)
        app = build_network_app(config, listener, credentials={TENANT: tenant.credentials})
        sandbox_config = uvicorn.Config(
            sandbox_app, host="127.0.0.1", port=sandbox_port, log_config=None, log_level="error", access_log=False
        )
        server_config = uvicorn_config(app, listener.host, listener.port, config.http)
        server_config.access_log = False  # a line per delivery would measure the terminal
        sandbox, server = uvicorn.Server(sandbox_config), uvicorn.Server(server_config)
        tasks = [await _started(sandbox), await _started(server)]
        key = sandbox_app.state.callbacks.signing_key
        url = f"{listener.origin}/callbacks/{TENANT}?recordId=1"
        limits = httpx2.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
        try:
            async with httpx2.AsyncClient(limits=limits, timeout=30) as http:

                async def deliver(body: bytes) -> float:
                    started = time.perf_counter()
                    answer = await http.post(url, content=body, headers={SIGNATURE_HEADER: signature(key, body)})
                    if answer.status_code != 200:
                        raise RuntimeError(f"the receiver refused a benchmark delivery: {answer.text}")
                    return time.perf_counter() - started

                await deliver(_deliveries(sandbox_app, 1)[0])  # the key's one fetch, and warm connections
                gate = asyncio.Semaphore(10)

                async def paced(body: bytes) -> float:
                    async with gate:
                        return await deliver(body)

                bodies = _deliveries(sandbox_app, throughput_count)
                started = time.perf_counter()
                await asyncio.gather(*(paced(body) for body in bodies))
                throughput = throughput_count / (time.perf_counter() - started)
                answers: list[float] = []
                for _ in range(rounds):
                    answers += await asyncio.gather(*(deliver(body) for body in _deliveries(sandbox_app, CONCURRENT)))
        finally:
            for running in (server, sandbox):
                running.should_exit = True
            await asyncio.gather(*tasks)
            await sandbox_app.state.callbacks.aclose()
        stored = (await SqliteEventLog(config.events_path).latest(TENANT, 1)).next_cursor
    answers_ms = [seconds * 1000 for seconds in answers]
    return [
        ("verified callbacks per second on loopback (10 in flight)", f"{throughput:,.0f}"),
        (
            f"answer time under {CONCURRENT} concurrent deliveries, p50 / p99 / max ({len(answers):,} deliveries)",
            f"{statistics.median(answers_ms):.1f} / {_percentile(answers_ms, 0.99):.1f} / {max(answers_ms):.1f} ms",
        ),
        ("events stored (one per delivery)", f"{stored:,}"),
    ]


def ticket_event(n: int, now: datetime) -> NewEvent:
    """The event of a ticket's change, as a callback makes it: what the event log benchmarks store."""
    return NewEvent(
        tenant=TENANT,
        message_id=str(uuid.uuid4()),
        type="ticket",
        action="updated",
        record_id=1000 + n % 5000,
        received=now,
        board="Service Desk",
        fields={
            "by": "jsmith",
            "updated": now.isoformat(),
            "summary": f"Printer on the third floor jams on every print job ({n})",
            "status": "In Progress",
            "priority": "Priority 3 - Normal Response",
            "company": "Smith, Jones & Partners LLP",
        },
    )


async def _log_size() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="connectwise-bench-") as directory:
        log = SqliteEventLog(Path(directory) / "events.sqlite3")
        now = datetime.now(timezone.utc)
        started = time.perf_counter()
        for n in range(LOG_EVENTS):
            await log.append(ticket_event(n, now))
        appends = LOG_EVENTS / (time.perf_counter() - started)
        with_wal = log.size().bytes
        log.close()  # the last connection checkpoints the write-ahead log into the file
        size = log.path.stat().st_size
    return [
        (
            f"event log size per {LOG_EVENTS:,} ticket events: the file / with its write-ahead log before a checkpoint",
            f"{size / 1024 / 1024:.2f} / {with_wal / 1024 / 1024:.2f} MiB",
        ),
        ("event log appends per second (each its own transaction)", f"{appends:,.0f}"),
    ]


async def bench_callbacks(quick: bool) -> list[tuple[str, str]]:
    return [*await _receiver(quick), *await _log_size()]
