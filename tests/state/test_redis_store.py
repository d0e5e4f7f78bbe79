"""The Redis store's reachability (what `/ready` reads) and the catalog lists it shares: one fetch for every
replica, each replica's copy ending when the shared one does, and each replica on its own while Redis is down."""

from __future__ import annotations

import asyncio

import pytest

from mcp_server_connectwise.config import StateConfig
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.services import catalog
from mcp_server_connectwise.services.catalog import Catalog
from mcp_server_connectwise.state.redis import RedisState
from mcp_server_connectwise.state.store import EmbeddedState, open_state

from support.harness import sandbox_app, sandbox_client
from support.state_store import state_config


@pytest.fixture
async def replicas(redis_server):
    stores = [RedisState(state_config(redis_server)) for _ in range(2)]
    yield stores
    for store in stores:
        await store.aclose()


async def test_the_check_says_whether_the_store_answers_now(replicas, redis_server):
    store = replicas[0]
    assert await store.check() == store.status
    assert store.status.reachable and store.status.detail == f"redis://127.0.0.1:{redis_server.port}/0: reachable"
    redis_server.stop()
    check = await store.check()
    assert not check.reachable
    assert check.detail.startswith(f"redis://127.0.0.1:{redis_server.port}/0: unreachable since 20")
    assert "(ConnectionError: " in check.detail
    redis_server.start()
    assert (await store.check()).reachable


async def test_without_a_url_the_store_is_this_process():
    store = open_state(StateConfig())
    assert isinstance(store, EmbeddedState) and store.catalog_cache("acme") is None
    assert (await store.check()).reachable


def catalogs(replicas, ttl: float):
    app = sandbox_app()
    sandbox = sandbox_tenant("acme", app)
    return app, [Catalog(sandbox_client(sandbox), ttl=ttl, shared=store.catalog_cache("acme")) for store in replicas]


async def test_a_list_is_fetched_once_for_every_replica_and_ends_on_each_when_the_shared_copy_does(
    replicas, redis_server
):
    app, (first, second) = catalogs(replicas, ttl=1.0)
    boards, fetched = await first.load(catalog.BOARDS)
    assert fetched and len(app.state.request_log) == 1
    key = replicas[0].connection.key("acme", "catalog", catalog.BOARDS.path)
    assert 0 < redis_server.client().pttl(key) <= 1000
    await asyncio.sleep(0.5)
    shared, fetched = await second.load(catalog.BOARDS)
    assert not fetched and shared == boards and len(app.state.request_log) == 1
    assert second.cached(catalog.BOARDS) == boards
    await asyncio.sleep(0.6)  # past the first fetch's TTL: gone everywhere, though the second got it later
    assert second.cached(catalog.BOARDS) is None and first.cached(catalog.BOARDS) is None
    _, fetched = await second.load(catalog.BOARDS)
    assert fetched and len(app.state.request_log) == 2


async def test_a_refresh_is_shared_too(replicas):
    app, (first, second) = catalogs(replicas, ttl=60)
    await first.load(catalog.PRIORITIES)
    await second.load(catalog.PRIORITIES, refresh=True)  # a name was not found: fetched again, for everyone
    third = Catalog(sandbox_client(sandbox_tenant("acme", app)), shared=replicas[0].catalog_cache("acme"))
    _, fetched = await third.load(catalog.PRIORITIES)
    assert not fetched and len(app.state.request_log) == 2


async def test_while_redis_is_down_each_replica_keeps_its_own_lists(replicas, redis_server):
    app, (first, second) = catalogs(replicas, ttl=60)
    await first.load(catalog.MEMBERS)
    redis_server.stop()
    _, fetched = await second.load(catalog.MEMBERS)  # the shared copy cannot be read: from ConnectWise
    assert fetched and len(app.state.request_log) == 2
    _, fetched = await second.load(catalog.MEMBERS)  # and kept here
    assert not fetched and len(app.state.request_log) == 2
    assert not replicas[1].status.reachable


def test_at_start_a_redis_that_can_lose_keys_or_keeps_nothing_is_warned_of(redis_server, caplog):
    from mcp_server_connectwise.state.redis import check_reachable_now

    caplog.set_level("WARNING", logger="mcp_server_connectwise.state.redis.connection")
    shown = f"the shared state store at redis://127.0.0.1:{redis_server.port}/0"
    redis = redis_server.client()
    redis.config_set("maxmemory-policy", "allkeys-lru")  # the test's own: saving nothing, appendonly no
    check_reachable_now(state_config(redis_server))
    assert "evicts keys" not in caplog.text  # without a memory limit, nothing is evicted
    caplog.clear()
    redis.config_set("maxmemory", "512mb")
    check_reachable_now(state_config(redis_server))
    assert [record.getMessage() for record in caplog.records] == [
        f"{shown} evicts keys when full (maxmemory-policy allkeys-lru): a forgotten MessageId or alert lock can make "
        "a second event or ticket; set maxmemory-policy noeviction",
        f"{shown} keeps nothing across a restart (no appendonly, no save): event cursors would start again at 1; "
        "set appendonly yes",
    ]
    caplog.clear()
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("save", "3600 1")  # snapshots (appendonly would do too)
    check_reachable_now(state_config(redis_server))
    assert caplog.records == []
