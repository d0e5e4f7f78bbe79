"""Three replicas for real: `mcp-server-connectwise serve --transport http` three times on loopback ports, one
redis-server (`[state] url`), one sandbox on loopback (a process of its own, answering in 100 ms), timed where
each request arrives.

- 300 concurrent calls spread over the replicas: in no window do the sandbox's arrivals exceed the tenant's
  budget for that window (its rate) plus its burst - three replicas with budgets of their own would make three
  times as many;
- one alert posted to all three at once makes one ticket;
- a replica killed while it holds alert locks leaves none held past their expiry, and its alert is handled by
  another replica afterwards;
- Redis stopped: reads keep answering on every replica, POST /alerts answers 503, /ready says so; Redis back:
  alerts are handled again, with no restart;
- the sandbox's callback for a technician's change, delivered to replica A, is returned by get_ticket_events
  on replica C and tells a subscriber on replica B;
- a replica killed while callbacks pour in has stored every one it acknowledged, once (read on another).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Awaitable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ResourceUpdated

from cli.test_graceful_shutdown import tenant_config
from mcp_server_connectwise.bench.budget import max_in_window
from mcp_server_connectwise.bench.processes import LoopbackSandbox, free_port, wait_until
from mcp_server_connectwise.connectwise.callbacks import SIGNATURE_HEADER, signature
from mcp_server_connectwise.connectwise.ratelimit import default_burst
from mcp_server_connectwise.http_alerts import ALERTS_PATH
from mcp_server_connectwise.http_auth import hash_token, new_token
from mcp_server_connectwise.sandbox.settings import SandboxSettings
from mcp_server_connectwise.sandbox.tenant import ALERTS
from mcp_server_connectwise.services.alerts import alert_key
from mcp_server_connectwise.state.redis.alerts import LOCK_SECONDS
from mcp_server_connectwise.state.redis.connection import CHECK_SECONDS_WHILE_UNREACHABLE
from server.test_http_callbacks import register, technician
from server.test_stdio_inspector import console_script

from support.key_server import KeyServer, serving
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
def key_port() -> int:
    """Where a test's own ConnectWise key server listens (a key host the tenant allows), when it starts one."""
    return free_port()


@pytest.fixture
def replicas(tmp_path, sandbox, redis_server, key_port) -> Iterator[list[Replica]]:
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
        file.write(
            f'requests_per_minute = {REQUESTS_PER_MINUTE}\ncallback_key_hosts = ["127.0.0.1:{key_port}"]\n'
            f"[tenants.acme.alerts]\n{alerts}"
        )
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


async def unwrapped(run: Awaitable[None]) -> None:
    """Await `run`, raising the error itself out of the exception groups the MCP clients' task groups wrap it in."""
    try:
        await run
    except BaseExceptionGroup as group:
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        raise error from None


async def test_three_replicas_share_the_budget_the_alert_locks_and_survive_losing_redis(
    sandbox, replicas, redis_server
):
    await unwrapped(three_replicas(sandbox, replicas, redis_server))


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
        for replica in living:
            not_ready = await http.get(replica.base + "/ready")
            assert not_ready.status_code == 503 and not_ready.json()["checks"]["state"] == "unreachable"

        redis_server.start()
        await asyncio.sleep(CHECK_SECONDS_WHILE_UNREACHABLE + 1)
        resumed = [await post_alert(http, replica, "fw02-ping") for replica in living]
        assert [answer.json()["results"][0]["outcome"] for answer in resumed] == ["created", "coalesced"]
        assert len(await tickets_of(sandbox, "fw02-ping")) == 1
        assert {(await http.get(replica.base + "/ready")).status_code for replica in living} == {200}


# --- events: one log, every replica ---------------------------------------------------------------------

DELIVERIES = 300
IN_FLIGHT = 10
KILL_AFTER = 60  # acknowledged deliveries before the replica is killed


def ticket_callback(keys: KeyServer, n: int) -> dict:
    """A ConnectWise callback for a change to ticket 50000 + n, signed (by the caller) with the key server's key."""
    ticket = {"id": 50_000 + n, "summary": f"Disk {n} is failing", "board": {"id": 1, "name": "Service Desk"}}
    return {
        "MessageId": f"delivery-{n}",
        "FromUrl": "127.0.0.1",
        "CompanyId": SandboxSettings().company,
        "MemberId": "jsmith",
        "Action": "updated",
        "Type": "ticket",
        "ID": ticket["id"],
        "Entity": json.dumps(ticket),
        "Metadata": {"key_url": keys.url()},
        "CallbackObjectRecId": 1,
    }


async def all_events(session: Client) -> list[dict]:
    seen, since = [], 0
    while True:
        result = await session.call_tool("get_ticket_events", {"since": since, "limit": 100})
        assert not result.is_error, result.content
        page = result.structured_content
        seen += page["events"]
        since = page["next_cursor"]
        if not page["has_more"]:
            return seen


async def test_callbacks_reach_every_replica_and_a_killed_replica_loses_none_it_acknowledged(
    sandbox, replicas, key_port
):
    await unwrapped(events_on_replicas(sandbox, replicas, key_port))


async def events_on_replicas(sandbox: LoopbackSandbox, replicas: list[Replica], key_port: int) -> None:
    a, b, c = replicas
    keys = KeyServer()
    async with serving(keys.app(), port=key_port) as origin, AsyncExitStack() as stack:
        keys.origin = origin
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        )
        on_b = await stack.enter_async_context(Client(streamable_http_client(b.base + "/mcp", http_client=http)))
        on_c = await stack.enter_async_context(Client(streamable_http_client(c.base + "/mcp", http_client=http)))
        subscription = await stack.enter_async_context(
            on_b.listen(resource_subscriptions=["connectwise://acme/events"])
        )

        # --- the sandbox calls replica A back; C returns the event, B's subscriber is told ---------------------
        await register(sandbox.base_url, a)
        async with httpx2.AsyncClient(headers={"clientId": "test"}, timeout=30) as connectwise:
            [ticket] = (await connectwise.get(f"{sandbox.base_url}/service/tickets?pageSize=1", auth=AUTH)).json()
            patch = [{"op": "replace", "path": "summary", "value": "Printer on floor 3 is offline"}]
            as_jsmith = await technician(sandbox.base_url, connectwise)
            answer = await connectwise.patch(
                f"{sandbox.base_url}/service/tickets/{ticket['id']}", json=patch, auth=as_jsmith
            )
            assert answer.status_code == 200, answer.text
        told = await asyncio.wait_for(anext(aiter(subscription)), 30)
        assert told == ResourceUpdated(uri="connectwise://acme/events")
        [event] = await all_events(on_c)
        assert (event["cursor"], event["id"], event["by"]) == (1, ticket["id"], "jsmith")
        assert event["summary"] == "Printer on floor 3 is offline"

        # --- callbacks pour into replica C, which is killed mid-run ----------------------------------------
        acknowledged: list[int] = []
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def deliver(payload: dict) -> None:
            raw = json.dumps(payload).encode()
            headers = {"content-type": "application/json", SIGNATURE_HEADER: signature(keys.key, raw)}
            async with slots:
                try:
                    answer = await http.post(
                        f"{c.base}/callbacks/acme?recordId={payload['ID']}", content=raw, headers=headers
                    )
                except httpx2.TransportError:
                    return  # not acknowledged: ConnectWise would deliver it again
            if answer.status_code == 200:
                acknowledged.append(payload["ID"])

        sending = asyncio.gather(*(deliver(ticket_callback(keys, n)) for n in range(DELIVERIES)))
        await asyncio.to_thread(wait_until, lambda: len(acknowledged) >= KILL_AFTER, "deliveries acknowledged")
        c.process.send_signal(signal.SIGKILL)
        await sending
        assert KILL_AFTER <= len(acknowledged) < DELIVERIES
        stored = [event["id"] for event in await all_events(on_b)][1:]
        assert len(stored) == len(set(stored))  # each once
        assert set(acknowledged) <= set(stored)
        assert keys.requests == ["/key"]  # the key was fetched once, and kept
