"""The event log, embedded (SQLite) and shared (Redis), to one contract: once per MessageId, in order, per
tenant; pages after a cursor; retention; restarts. Then what only the shared one does: cursors and listeners
on every replica, and a Redis that stops answering."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone

import pytest

from mcp_server_connectwise.state.events import (
    CursorAhead,
    EventFilter,
    EventLog,
    EventLogUnavailable,
    NewEvent,
    SqliteEventLog,
)
from mcp_server_connectwise.state.redis import RedisState
from mcp_server_connectwise.state.redis.events import RedisEventLog

from support.state_store import state_config

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


def event(n: int, tenant: str = "acme", **overrides) -> NewEvent:
    fields = dict(
        tenant=tenant,
        message_id=f"m-{n}",
        type="ticket",
        action="updated",
        record_id=1000 + n,
        received=T0 + timedelta(seconds=n),
        board="Service Desk",
        fields={"summary": f"Ticket {n}"},
    )
    return NewEvent(**(fields | overrides))


OpenLog = Callable[..., EventLog]


@pytest.fixture(params=["sqlite", "redis"])
async def open_log(request, tmp_path) -> AsyncIterator[OpenLog]:
    """Opens the store's log (options: retention, max_per_tenant, clock); a later one is the same store seen
    again (another process, or the same one restarted)."""
    async with AsyncExitStack() as opened:
        if request.param == "sqlite":

            def open_sqlite(**options) -> EventLog:
                log = SqliteEventLog(tmp_path / "events.sqlite3", **options)
                opened.callback(log.close)
                return log

            yield open_sqlite
        else:
            server = request.getfixturevalue("redis_server")

            def open_redis(**options) -> EventLog:
                state = RedisState(state_config(server))
                log = RedisEventLog(state.connection, **options)
                opened.push_async_callback(state.aclose)
                opened.push_async_callback(log.aclose)
                return log

            yield open_redis


@pytest.fixture
def log(open_log) -> EventLog:
    return open_log()


async def test_an_event_is_stored_once_per_message_id_and_tenant(log):
    first = await log.append(event(1))
    assert first is not None and first.cursor == 1
    assert await log.append(event(1, record_id=5)) is None  # a repeat delivery
    assert (await log.append(event(1, tenant="globex"))).cursor == 1  # another tenant's own sequence
    assert [e.record_id for e in (await log.latest("acme", 10)).events] == [1001]


async def test_cursors_count_up_per_tenant_and_a_page_reads_on_from_one(log):
    for n in range(1, 8):
        await log.append(event(n))
    page = await log.after("acme", 0, 3)
    assert [e.cursor for e in page.events] == [1, 2, 3] and page.has_more and page.next_cursor == 3
    page = await log.after("acme", page.next_cursor, 3)
    assert [e.cursor for e in page.events] == [4, 5, 6] and page.has_more
    page = await log.after("acme", page.next_cursor, 3)
    assert [e.cursor for e in page.events] == [7] and not page.has_more and page.next_cursor == 7
    assert (await log.after("acme", 7, 3)).events == [] and (await log.after("acme", 7, 3)).next_cursor == 7
    assert (await log.after("globex", 0, 3)).next_cursor == 0


async def test_latest_gives_the_newest_oldest_first_and_the_cursor_to_go_on_from(log):
    for n in range(1, 6):
        await log.append(event(n))
    page = await log.latest("acme", 2)
    assert [e.cursor for e in page.events] == [4, 5] and page.next_cursor == 5 and not page.has_more


async def test_filters_take_a_type_a_type_and_action_and_a_board_in_any_case(log):
    await log.append(event(1, action="added"))
    await log.append(event(2, type="time", board="Alerts", fields={"ticket_id": 1001, "hours": 0.5}))
    await log.append(event(3))
    await log.append(event(4, action="deleted", board=None, fields={}))
    assert [e.cursor for e in (await log.after("acme", 0, 10, EventFilter(types=("ticket",)))).events] == [1, 3, 4]
    assert [e.cursor for e in (await log.after("acme", 0, 10, EventFilter(types=("ticket.added", "time")))).events] == [
        1,
        2,
    ]
    assert [e.cursor for e in (await log.after("acme", 0, 10, EventFilter(board="service desk"))).events] == [1, 3]
    time_entry = (await log.after("acme", 0, 10, EventFilter(board="ALERTS"))).events[0]
    assert (time_entry.type, time_entry.board, time_entry.fields) == (
        "time",
        "Alerts",
        {"ticket_id": 1001, "hours": 0.5},
    )
    # A filtered page that finds nothing more still moves the cursor to the newest event.
    page = await log.after("acme", 0, 10, EventFilter(types=("company",)))
    assert page.events == [] and page.next_cursor == 4


async def test_a_cursor_past_the_newest_event_is_refused(log):
    await log.append(event(1))
    with pytest.raises(CursorAhead) as ahead:
        await log.after("acme", 2, 10)
    assert (ahead.value.cursor, ahead.value.head) == (2, 1)


async def test_events_and_cursors_survive_reopening_the_store(open_log):
    first = open_log()
    await first.append(event(1))
    await first.append(event(2))
    await first.aclose()
    again = open_log()
    assert await again.append(event(2)) is None  # still known
    assert (await again.append(event(3))).cursor == 3
    assert [e.fields["summary"] for e in (await again.after("acme", 0, 10)).events] == [
        "Ticket 1",
        "Ticket 2",
        "Ticket 3",
    ]


async def test_the_file_is_readable_by_its_owner_only(tmp_path):
    log = SqliteEventLog(tmp_path / "events.sqlite3")
    await log.append(event(1))
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    log.close()


async def test_retention_drops_old_and_surplus_events_and_cursors_never_go_back(open_log):
    now = [T0 + timedelta(days=30)]
    log = open_log(retention=timedelta(days=7), max_per_tenant=3, clock=lambda: now[0])
    await log.append(event(1, received=T0))  # 30 days old
    for n in range(2, 8):
        await log.append(event(n, received=now[0]))
    await log.maintain()
    assert [e.cursor for e in (await log.after("acme", 0, 10)).events] == [5, 6, 7]
    page = await log.after("acme", 1, 10)
    assert page.gap and [e.cursor for e in page.events] == [5, 6, 7]
    assert not (await log.after("acme", 4, 10)).gap
    assert (await log.append(event(8, received=now[0]))).cursor == 8
    # Everything gone: a cursor before it knows it missed events.
    now[0] += timedelta(days=8)
    await log.maintain()
    page = await log.after("acme", 6, 10)
    assert page.events == [] and page.gap and page.next_cursor == 8


async def test_listeners_hear_of_new_events_not_of_repeats(log):
    heard: list[str] = []
    unsubscribe = log.subscribe(heard.append)
    await log.append(event(1))
    await log.append(event(1))
    await log.append(event(2, tenant="globex"))
    unsubscribe()
    await log.append(event(3))
    assert heard == ["acme", "globex"]


async def test_size_counts_the_file_and_the_events_of_each_tenant(tmp_path):
    log = SqliteEventLog(tmp_path / "events.sqlite3")
    for n in range(1, 4):
        await log.append(event(n))
    await log.append(event(1, tenant="globex"))
    size = log.size()
    assert size.events == {"acme": 3, "globex": 1} and size.bytes > 0 and size.path == log.path
    log.close()


# --- the shared log: several replicas, one Redis ----------------------------------------------------------


@pytest.fixture
async def replicas(redis_server) -> AsyncIterator[list[RedisEventLog]]:
    """Three replicas' logs, each on a connection of its own, listening."""
    states = [RedisState(state_config(redis_server)) for _ in range(3)]
    logs = [RedisEventLog(state.connection) for state in states]
    for log in logs:
        await log.start()
    yield logs
    for log, state in zip(logs, states, strict=True):
        await log.aclose()
        await state.aclose()


async def listening(logs: list[RedisEventLog]) -> None:
    await asyncio.wait_for(asyncio.gather(*(log.listening.wait() for log in logs)), 10)


async def heard_within(heard: list[str], expected: list[str], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while heard != expected:
        assert asyncio.get_running_loop().time() < deadline, f"heard {heard}, expected {expected}"
        await asyncio.sleep(0.02)


async def test_an_event_stored_on_one_replica_is_read_on_another_with_the_same_cursor_and_heard_on_a_third(
    replicas,
):
    a, b, c = replicas
    heard_on_b: list[str] = []
    heard_on_a: list[str] = []
    b.subscribe(heard_on_b.append)
    a.subscribe(heard_on_a.append)
    await listening(replicas)
    stored = await a.append(event(1))
    assert stored is not None and stored.cursor == 1
    await heard_within(heard_on_b, ["acme"])
    assert heard_on_a == ["acme"]  # its own event once: told at once, its channel message not again
    page = await c.after("acme", 0, 10)
    assert [(e.cursor, e.message_id, e.fields) for e in page.events] == [(1, "m-1", {"summary": "Ticket 1"})]
    assert (await b.append(event(2))).cursor == 2  # one sequence, whichever replica stores it
    assert [e.cursor for e in (await c.after("acme", 1, 10)).events] == [2]


async def test_a_message_id_delivered_to_every_replica_at_once_is_stored_once(replicas):
    stored = await asyncio.gather(*(log.append(event(7)) for log in replicas for _ in range(5)))
    assert sum(s is not None for s in stored) == 1
    assert [e.message_id for e in (await replicas[2].latest("acme", 10)).events] == ["m-7"]


async def test_without_redis_each_use_is_one_sentence_and_when_it_is_back_listeners_are_told_to_read_again(
    replicas, redis_server
):
    a, b, _c = replicas
    heard: list[str] = []
    b.subscribe(heard.append)
    await listening(replicas)
    await a.append(event(1))
    await heard_within(heard, ["acme"])
    redis_server.stop()
    with pytest.raises(EventLogUnavailable) as refused:
        await a.append(event(2))
    assert str(refused.value) == "The shared event store (Redis, [state] url) does not answer."
    assert refused.value.remedy == "Start Redis or correct [state] url, then try again."
    with pytest.raises(EventLogUnavailable):
        await b.after("acme", 0, 10)
    redis_server.start()  # saving nothing: the events before are gone with it, as a restarted Redis loses them
    await heard_within(heard, ["acme", "acme"], seconds=10.0)  # b may have missed events meanwhile
    assert (await a.append(event(2))).cursor == 1


async def test_events_dropped_between_reading_the_head_and_the_range_are_a_gap(replicas, monkeypatch):
    """Another replica's appends trim the oldest events (max_per_tenant) after this read took the head."""
    a, b, _c = replicas
    a.max_per_tenant = b.max_per_tenant = 5
    for n in range(1, 6):
        await a.append(event(n))
    read_head = RedisEventLog._head

    async def head_then_five_more(self, client, tenant):
        head = await read_head(self, client, tenant)
        for n in range(6, 11):
            await b.append(event(n))
        return head

    monkeypatch.setattr(RedisEventLog, "_head", head_then_five_more)
    page = await a.after("acme", 0, 10)
    assert page.events == [] and page.gap and page.next_cursor == 5


async def test_a_filtered_read_looks_at_a_bounded_number_of_events_and_says_where_to_go_on(replicas, monkeypatch):
    from mcp_server_connectwise.state.redis import events as redis_events

    log = replicas[0]  # SQLite filters in its query: only the shared log filters what it reads

    monkeypatch.setattr(redis_events, "MAX_SCANNED", 300)  # a small bound, so that the test stays quick
    for n in range(1, 451):
        await log.append(event(n, type="time" if n == 450 else "ticket"))
    only_time = EventFilter(types=("time",))
    first = await log.after("acme", 0, 10, only_time)
    assert first.events == [] and first.has_more and first.next_cursor == 400  # two batches of 200 read
    second = await log.after("acme", first.next_cursor, 10, only_time)
    assert [e.cursor for e in second.events] == [450] and not second.has_more and second.next_cursor == 450
