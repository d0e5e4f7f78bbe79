"""The per-tenant reference cache: TTL, all pages, one refresh on a miss."""

from __future__ import annotations

from mcp_server_connectwise.services import catalog
from mcp_server_connectwise.services.catalog import Catalog

from support.harness import sandbox_app, sandbox_session


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_lists_are_cached_until_the_ttl_runs_out():
    app = sandbox_app()
    clock = Clock()
    cache = Catalog(sandbox_session(app).client, ttl=60, clock=clock)
    boards, fresh = await cache.load(catalog.BOARDS)
    assert fresh and [b.name for b in boards][:2] == ["Service Desk", "Alerts"]
    _, fresh = await cache.load(catalog.BOARDS)
    assert not fresh and len(app.state.request_log) == 1
    clock.now = 61
    _, fresh = await cache.load(catalog.BOARDS)
    assert fresh and len(app.state.request_log) == 2


async def test_a_miss_refreshes_a_cached_list_once():
    app = sandbox_app()
    cache = Catalog(sandbox_session(app).client)
    await cache.load(catalog.PRIORITIES)
    found, _ = await cache.find(catalog.PRIORITIES, lambda p: p.name == "No Such Priority")
    assert found is None and len(app.state.request_log) == 2


async def test_misses_one_after_another_refresh_a_list_once_per_interval():
    app = sandbox_app()
    clock = Clock()
    cache = Catalog(sandbox_session(app).client, ttl=600, clock=clock)
    await cache.load(catalog.PRIORITIES)
    for guess in ("Urgent", "Critical", "P1", "Highest"):  # a model guessing names
        found, _ = await cache.find(catalog.PRIORITIES, lambda p, guess=guess: p.name == guess)
        assert found is None
    assert len(app.state.request_log) == 2  # the load, and the first miss's refresh
    clock.now = catalog.MISS_REFRESH_SECONDS
    await cache.find(catalog.PRIORITIES, lambda p: p.name == "Urgent")
    assert len(app.state.request_log) == 3


async def test_a_fresh_list_is_not_fetched_again_on_a_miss():
    app = sandbox_app()
    cache = Catalog(sandbox_session(app).client)
    found, _ = await cache.find(catalog.WORK_TYPES, lambda w: w.name == "Nope")
    assert found is None and len(app.state.request_log) == 1


async def test_statuses_are_listed_in_pages_of_the_largest_size():
    app = sandbox_app()
    session = sandbox_session(app)
    for n in range(3):
        await session.client.post(
            "/service/boards/5/statuses",
            {
                "name": f"Extra {n}",
                "sortOrder": 10 + n,
                "closedStatus": False,
                "timeEntryNotAllowed": False,
                "defaultFlag": False,
                "inactive": False,
            },
        )
    statuses, _ = await Catalog(session.client).load(catalog.board_statuses(5))
    assert len(statuses) == 5
    assert app.state.request_log[-1]["query"]["pageSize"] == "1000"
