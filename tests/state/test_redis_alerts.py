"""Alert locks and counters in a real Redis: replicas take turns on a key and share what it has seen; a holder
keeps its lock while it works; one paused past its lock's expiry writes nothing more to ConnectWise and cannot
overwrite the next holder's counters."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone

import pytest

from mcp_server_connectwise.config import AppConfig, AuditConfig
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.services import notes
from mcp_server_connectwise.services.notes import NoteRequest
from mcp_server_connectwise.services.tenancy import Tenants
from mcp_server_connectwise.state.errors import LockLost, StateUnavailable
from mcp_server_connectwise.state.redis import RedisState
from mcp_server_connectwise.state.redis.alerts import RedisAlertKeys

from support.harness import sandbox_app
from support.state_store import state_config

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
KEY = "nagios:disk-c-srv01"


@pytest.fixture
async def replicas(redis_server):
    stores = [RedisState(state_config(redis_server)) for _ in range(2)]
    yield stores
    for store in stores:
        await store.aclose()


async def test_replicas_take_turns_on_a_key_and_share_its_counters(replicas):
    locks = [store.alert_locks("acme") for store in replicas]
    inside, most = 0, 0

    async def report(number: int) -> None:
        nonlocal inside, most
        async with locks[number % 2].locked(KEY) as state:
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)
            state.repeated(T0 + timedelta(minutes=number))
            inside -= 1

    await asyncio.gather(*(report(number) for number in range(20)))
    assert most == 1
    async with locks[0].locked(KEY) as state:
        assert (state.repeats, state.first_repeat, state.last_repeat) == (20, T0, T0 + timedelta(minutes=19))
    async with locks[1].locked("nagios:other") as other:
        assert other.repeats == 0  # each key its own


async def test_a_holder_that_works_longer_than_the_lock_keeps_it(replicas, redis_server):
    holder = RedisAlertKeys(replicas[0].connection, "acme", lock_seconds=0.3)
    contender = RedisAlertKeys(replicas[1].connection, "acme", lock_seconds=0.3)
    entered: list[float] = []

    async def contend() -> None:
        async with contender.locked(KEY):
            entered.append(time.monotonic())

    async with holder.locked(KEY):
        waiting = asyncio.create_task(contend())
        await asyncio.sleep(1.2)  # four lock lifetimes, renewed meanwhile
        assert entered == []
        lock = replicas[0].connection.key("acme", "alert", KEY, "lock")
        assert 0 < redis_server.client().pttl(lock) <= 300
        released = time.monotonic()
    await waiting
    assert entered[0] >= released


async def test_a_holder_paused_past_its_lock_sends_no_write_and_keeps_no_counters(replicas, redis_server, caplog):
    caplog.set_level(logging.WARNING)
    app = sandbox_app()
    tenant = sandbox_tenant("acme", app)
    tenants = Tenants(
        AppConfig(audit=AuditConfig(path=redis_server.directory / "audit.jsonl"), tenants={"acme": tenant.config}),
        credentials={"acme": tenant.credentials},
        transports={"acme": tenant.transport},
        state=replicas[0],
    )
    session = await tenants.open_session(tenant.config)
    paused = RedisAlertKeys(replicas[0].connection, "acme", lock_seconds=0.3)
    later = RedisAlertKeys(replicas[1].connection, "acme", lock_seconds=0.3)
    taken, done = asyncio.Event(), asyncio.Event()

    async def take_over() -> None:
        async with later.locked(KEY) as state:
            state.flapping_noted = True
            taken.set()
            await done.wait()

    async with paused.locked(KEY) as state:
        state.repeated(T0)
        other = asyncio.create_task(take_over())
        time.sleep(0.5)  # the whole process paused (a long GC, a stopped VM): nothing runs, the lock expires
        await taken.wait()
        with pytest.raises(LockLost):
            await notes.add_ticket_note(
                session, NoteRequest(ticket_id=1001, text="Still failing.", note_type="internal")
            )
        done.set()
        await other
    assert not [r for r in app.state.request_log if r["method"] != "GET"]  # the note was never sent
    async with later.locked(KEY) as state:
        assert state.flapping_noted and state.repeats == 0  # the later holder's counters, not the paused one's
    assert any("lock expired before its repeat counters were saved" in r.getMessage() for r in caplog.records)
    await tenants.aclose()


async def test_no_lock_is_taken_while_the_store_is_unreachable(replicas, redis_server):
    redis_server.stop()
    with pytest.raises(StateUnavailable, match=f"127.0.0.1:{redis_server.port}/0 cannot be reached"):
        async with replicas[0].alert_locks("acme").locked(KEY):
            pytest.fail("locked without a store")
    redis_server.start()
    async with replicas[0].alert_locks("acme").locked(KEY) as state:  # back: no restart needed
        assert state.repeats == 0
