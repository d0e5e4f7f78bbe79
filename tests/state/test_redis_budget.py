"""The rate budget several replicas share through a real Redis: one token bucket (its rate after its burst), one
round-robin of callers across replicas, refusals past the caller's deadline at once, and a replica that loses
the store pacing itself with its share until the store is back. Each `RedisState` here is a replica: its own
connection and replica id, as a separate process has."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from mcp_server_connectwise.bench.budget import max_in_window
from mcp_server_connectwise.connectwise.ratelimit import BudgetWaitTooLong
from mcp_server_connectwise.state.redis import RedisState
from mcp_server_connectwise.state.redis.connection import CHECK_SECONDS_WHILE_UNREACHABLE

from support.state_store import state_config


@pytest.fixture
async def replicas(redis_server):
    stores = [RedisState(state_config(redis_server)) for _ in range(3)]
    yield stores
    for store in stores:
        await store.aclose()


async def wait_for(condition, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_three_replicas_share_one_bucket_paced_at_its_rate_after_its_burst(replicas):
    budgets = [store.rate_budget("acme", 600) for store in replicas]  # 10 a second, a burst of 10
    granted: list[float] = []

    async def request(number: int) -> None:
        await budgets[number % 3].acquire(("session", number % 7))
        granted.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(request(number) for number in range(40)))
    elapsed = time.monotonic() - started
    assert 2.6 <= elapsed <= 4.5, elapsed  # the burst at once, the other 30 at 10 a second
    assert max_in_window(granted, 0.05) <= 11  # the burst, and no more
    for window in (0.5, 1.0, 2.0):  # never more than the rate over any window, plus the burst (+1: polling)
        assert max_in_window(granted, window) <= 10 * window + 10 + 1, window


async def test_a_busy_caller_on_one_replica_delays_another_replicas_caller_by_one_turn(replicas):
    busy, other = replicas[0].rate_budget("acme", 600), replicas[1].rate_budget("acme", 600)
    for _ in range(10):
        await busy.acquire("warm-up")  # the burst is spent
    served: list[str] = []

    async def request(budget, caller: str) -> None:
        await budget.acquire(caller)
        served.append(caller)

    queued = [asyncio.create_task(request(busy, "busy")) for _ in range(10)]
    await asyncio.sleep(0.1)  # all ten waiting
    await asyncio.gather(request(other, "other"), *queued)
    assert served.index("other") <= 1, served  # behind the busy caller's current turn at most


async def test_a_wait_past_max_wait_is_refused_at_once_with_the_wait(replicas):
    first, second = replicas[0].rate_budget("acme", 60), replicas[1].rate_budget("acme", 60)  # 1 a second
    assert await first.acquire("a") == 0.0
    started = time.monotonic()
    with pytest.raises(BudgetWaitTooLong) as refused:
        await second.acquire("b", max_wait=0.5)
    assert time.monotonic() - started < 0.3
    assert 0.8 <= refused.value.wait <= 1.05


async def test_a_cancelled_wait_gives_its_place_up(replicas, redis_server):
    first, second = replicas[0].rate_budget("acme", 60), replicas[1].rate_budget("acme", 60)
    await first.acquire("a")
    gives_up = asyncio.create_task(first.acquire("a"))
    await asyncio.sleep(0.1)
    gives_up.cancel()
    await asyncio.sleep(0.1)
    waiting = replicas[0].connection.key("acme", "budget", "waiting")
    assert redis_server.client().zcard(waiting) == 0
    started = time.monotonic()
    await second.acquire("b")
    assert time.monotonic() - started < 1.2  # the next token, not the one after


async def test_budgets_of_two_tenants_are_apart(replicas):
    acme, globex = replicas[0].rate_budget("acme", 60), replicas[1].rate_budget("globex", 60)
    assert await acme.acquire() == 0.0
    assert await globex.acquire() == 0.0  # acme's spent bucket is not globex's


async def test_a_replica_that_loses_the_store_paces_itself_with_its_share_then_shares_again(
    replicas, redis_server, caplog
):
    caplog.set_level(logging.WARNING)
    one, two = replicas[0], replicas[1]
    budget = one.rate_budget("acme", 120)  # 2 a second, a burst of 2: two replicas' share is 1 a second
    await budget.acquire()
    two.rate_budget("acme", 120)
    await two.check()  # both replicas have said they are there
    await one.check()
    assert one.connection.replicas == 2
    waiting = asyncio.create_task(budget.acquire("a"))  # the burst is not spent: granted
    await waiting
    in_flight = asyncio.create_task(budget.acquire("a"))  # waits for the next token

    redis_server.stop()
    started = time.monotonic()
    await asyncio.wait_for(in_flight, 3)  # moved to the local budget, not lost
    await budget.acquire("a")
    second = time.monotonic()
    await budget.acquire("a")
    assert time.monotonic() - second >= 0.8  # the local share: 60/min, a burst of 1
    assert not one.status.reachable and "unreachable since" in one.status.detail
    assert time.monotonic() - started < 5
    [warning] = [r.getMessage() for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert f"at redis://127.0.0.1:{redis_server.port}/0 cannot be reached" in warning and "alert writes" in warning

    redis_server.start()
    await wait_for(lambda: one.status.reachable, "the store to answer again", 3 * CHECK_SECONDS_WHILE_UNREACHABLE + 2)
    await budget.acquire("a")
    assert redis_server.client().exists(one.connection.key("acme", "budget", "bucket"))  # shared again
    assert any("answers again" in r.getMessage() for r in caplog.records)
