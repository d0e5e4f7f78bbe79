"""Three replicas for real: `mcp-server-connectwise serve --transport http` three times on loopback ports, one
redis-server (`[state] url`), one sandbox on loopback (a process of its own, answering in 100 ms), timed where
each request arrives.

- 300 concurrent calls spread over the replicas: in no window do the sandbox's arrivals exceed the tenant's
  budget for that window (its rate) plus its burst - three replicas with budgets of their own would make three
  times as many;
- one alert posted to all three at once makes one ticket;
- a replica killed while it holds alert locks leaves none held past their expiry, and its alert is handled by
  another replica afterwards;
- Redis stopped: reads keep answering on every replica, POST /alerts answers 503; Redis back: alerts are
  handled again, with no restart.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from cli.test_graceful_shutdown import tenant_config
from mcp_server_connectwise.bench.budget import max_in_window
from mcp_server_connectwise.bench.processes import LoopbackSandbox, free_port, wait_until
from mcp_server_connectwise.connectwise.ratelimit import default_burst
from mcp_server_connectwise.http_alerts import ALERTS_PATH
from mcp_server_connectwise.http_auth import hash_token, new_token
from mcp_server_connectwise.sandbox.tenant import ALERTS
from mcp_server_connectwise.services.alerts import alert_key
from mcp_server_connectwise.state.redis.alerts import LOCK_SECONDS
from mcp_server_connectwise.state.redis.connection import CHECK_SECONDS_WHILE_UNREACHABLE
from server.test_stdio_inspector import console_script

from support.sandbox_http import AUTH

REPLICAS = 3
LATENCY_MS = 100.0  # an alert holds its lock for a few requests: long enough to be caught holding it
CALLS = 300
SESSIONS_PER_REPLICA = 2
REQUESTS_PER_MINUTE = 1200  # 20 a second: the 300 calls (one request each) take about 15 s
BURST = default_burst(REQUESTS_PER_MINUTE)
TOKEN = new_token()
ALERT = {
    "tenant": "acme",
    "source": "nagios",
    "state": "raised",
    "severity": "high",
    "company": "ACME",
    "summary": "ACME-FW01 does not answer ping",
}


class Replica:
    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.port, self.log = free_port(), log
        self.process = subprocess.Popen(
            [console_script(), "serve", "--config", str(config), "--transport", "http", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            env=env,
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def started(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        return "Uvicorn running" in self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(30)


@pytest.fixture
def sandbox(tmp_path) -> Iterator[LoopbackSandbox]:
    started = LoopbackSandbox(tmp_path, latency_ms=LATENCY_MS).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def replicas(tmp_path, sandbox, redis_server) -> Iterator[list[Replica]]:
    extra = (
        f'[state]\nurl = "{redis_server.url}"\n[server]\ncall_deadline_seconds = 60\n'
        f'[http.principals.alice]\ntoken_sha256 = "{hash_token(TOKEN)}"\ntenants = ["acme"]\n'
        'permissions = ["mcp", "alerts"]\n'
    )
    config, env = tenant_config(tmp_path, sandbox.port, extra)
    alerts = "".join(
        f"{key} = {json.dumps(value)}\n"
        for key, value in ALERTS.model_dump(exclude={"priority"}, exclude_none=True).items()
    )
    with config.open("a") as file:  # into [tenants.acme], the file's last table
        file.write(f"requests_per_minute = {REQUESTS_PER_MINUTE}\n[tenants.acme.alerts]\n{alerts}")
    started = [Replica(config, env, tmp_path / f"replica-{number}.log") for number in range(REPLICAS)]
    try:
        for replica in started:
            wait_until(replica.started, f"replica on port {replica.port}", timeout=60)
        yield started
    finally:
        for replica in started:
            replica.stop()


def lock_keys(redis) -> dict[str, int]:
    """The alert locks held now, by key, with the milliseconds each has left."""
    return {key: redis.pttl(key) for key in redis.scan_iter(match="*:alert:*:lock")}


async def post_alert(http: httpx2.AsyncClient, replica: Replica, alert_id: str) -> httpx2.Response:
    return await http.post(replica.base + ALERTS_PATH, json=ALERT | {"alert_id": alert_id})


async def tickets_of(sandbox: LoopbackSandbox, alert_id: str) -> list[dict]:
    """The sandbox's tickets of the alert, asked as any ConnectWise client asks."""
    key = alert_key(ALERT["source"], alert_id)
    async with httpx2.AsyncClient(auth=AUTH, headers={"clientId": "test"}) as http:
        answer = await http.get(f"{sandbox.base_url}/service/tickets", params={"conditions": f'externalXRef="{key}"'})
    answer.raise_for_status()
    return answer.json()


def first_error(error: BaseException) -> BaseException:
    """The error itself, out of the exception groups the MCP clients' task groups wrap it in."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def test_three_replicas_share_the_budget_the_alert_locks_and_survive_losing_redis(
    sandbox, replicas, redis_server
):
    try:
        await three_replicas(sandbox, replicas, redis_server)
    except BaseExceptionGroup as group:
        raise first_error(group) from None


async def three_replicas(sandbox: LoopbackSandbox, replicas: list[Replica], redis_server) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    doomed, survivor = replicas[-1], replicas[0]
    async with AsyncExitStack() as stack, AsyncExitStack() as doomed_stack:
        http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=120))
        sessions = [
            await (doomed_stack if replica is doomed else stack).enter_async_context(
                Client(streamable_http_client(replica.base + "/mcp", http_client=http))
            )
            for replica in replicas
            for _ in range(SESSIONS_PER_REPLICA)
        ]
        for session in sessions:
            await session.list_tools()  # the SDK's client lists tools before its first result anyway

        # --- 300 concurrent calls, spread over the replicas --------------------------------------------------
        await asyncio.sleep(BURST * 60 / REQUESTS_PER_MINUTE)  # the burst is whole again
        before = len(sandbox.arrivals())
        results = await asyncio.gather(
            *(sessions[n % len(sessions)].call_tool("search_tickets", {"limit": 5}) for n in range(CALLS))
        )
        arrivals = sandbox.arrivals()[before:]
        assert [r for r in results if r.is_error] == []
        assert len(arrivals) == CALLS  # one request each
        for window in (1.0, 5.0, 10.0, 60.0):  # +2: a request's trip from its replica to the sandbox varies
            bound = REQUESTS_PER_MINUTE / 60 * window + BURST + 2
            assert max_in_window(arrivals, window) <= bound, (window, max_in_window(arrivals, window))
        assert arrivals[-1] - arrivals[0] >= (CALLS - BURST) / (REQUESTS_PER_MINUTE / 60) - 1

        # --- one alert posted to every replica at once: one ticket -------------------------------------------
        answers = await asyncio.gather(*(post_alert(http, replica, "fw01-ping") for replica in replicas))
        outcomes = sorted(answer.json()["results"][0]["outcome"] for answer in answers)
        assert outcomes == ["coalesced", "coalesced", "created"]
        assert len(await tickets_of(sandbox, "fw01-ping")) == 1

        # --- a replica killed while it holds alert locks ------------------------------------------------------
        redis = redis_server.client()
        await doomed_stack.aclose()  # its MCP sessions end first: only its alerts are cut off
        batch = [ALERT | {"alert_id": f"disk-{n}"} for n in range(8)]
        posting = asyncio.create_task(http.post(doomed.base + ALERTS_PATH, json=batch))
        await asyncio.to_thread(wait_until, lambda: lock_keys(redis), "a lock held by the doomed replica")
        doomed.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        with pytest.raises(httpx2.TransportError):
            await posting
        held = lock_keys(redis)
        assert held and all(0 < left <= LOCK_SECONDS * 1000 for left in held.values()), held
        await asyncio.to_thread(wait_until, lambda: not lock_keys(redis), "the locks' expiry", LOCK_SECONDS + 2)
        assert time.monotonic() - killed_at <= LOCK_SECONDS + 1
        alert_id = next(iter(held)).split(":alert:nagios:")[1].removesuffix(":lock")
        after = await post_alert(http, survivor, alert_id)
        assert after.status_code == 200 and after.json()["results"][0]["ok"], after.text
        assert len(await tickets_of(sandbox, alert_id)) == 1

        # --- Redis stopped mid-run, then back ----------------------------------------------------------------
        redis_server.stop()
        living = [replica for replica in replicas if replica is not doomed]
        reads = await asyncio.gather(
            *(session.call_tool("search_tickets", {"limit": 5}) for session in sessions[: 2 * len(living)])
        )
        assert [r for r in reads if r.is_error] == []
        refused = [await post_alert(http, replica, "fw02-ping") for replica in living]
        assert {answer.status_code for answer in refused} == {503}
        assert all("shared state store cannot be reached" in answer.json()["error"] for answer in refused)
        assert await tickets_of(sandbox, "fw02-ping") == []

        redis_server.start()
        await asyncio.sleep(CHECK_SECONDS_WHILE_UNREACHABLE + 1)
        resumed = [await post_alert(http, replica, "fw02-ping") for replica in living]
        assert [answer.json()["results"][0]["outcome"] for answer in resumed] == ["created", "coalesced"]
        assert len(await tickets_of(sandbox, "fw02-ping")) == 1
