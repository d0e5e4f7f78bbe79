"""The SQLite event log: once per MessageId, in order, per tenant; pages after a cursor; retention; restarts."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone

import pytest

from mcp_server_connectwise.state.events import CursorAhead, EventFilter, NewEvent, SqliteEventLog

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


@pytest.fixture
def log(tmp_path):
    log = SqliteEventLog(tmp_path / "events.sqlite3")
    yield log
    log.close()


def test_an_event_is_stored_once_per_message_id_and_tenant(log):
    first = log.append(event(1))
    assert first is not None and first.cursor == 1
    assert log.append(event(1, record_id=5)) is None  # a repeat delivery
    assert log.append(event(1, tenant="globex")).cursor == 1  # another tenant's own sequence
    assert [e.record_id for e in log.latest("acme", 10).events] == [1001]


def test_cursors_count_up_per_tenant_and_a_page_reads_on_from_one(log):
    for n in range(1, 8):
        log.append(event(n))
    page = log.after("acme", 0, 3)
    assert [e.cursor for e in page.events] == [1, 2, 3] and page.has_more and page.next_cursor == 3
    page = log.after("acme", page.next_cursor, 3)
    assert [e.cursor for e in page.events] == [4, 5, 6] and page.has_more
    page = log.after("acme", page.next_cursor, 3)
    assert [e.cursor for e in page.events] == [7] and not page.has_more and page.next_cursor == 7
    assert log.after("acme", 7, 3).events == [] and log.after("acme", 7, 3).next_cursor == 7
    assert log.after("globex", 0, 3).next_cursor == 0


def test_latest_gives_the_newest_oldest_first_and_the_cursor_to_go_on_from(log):
    for n in range(1, 6):
        log.append(event(n))
    page = log.latest("acme", 2)
    assert [e.cursor for e in page.events] == [4, 5] and page.next_cursor == 5 and not page.has_more


def test_filters_take_a_type_a_type_and_action_and_a_board_in_any_case(log):
    log.append(event(1, action="added"))
    log.append(event(2, type="time", board="Alerts", fields={"ticket_id": 1001, "hours": 0.5}))
    log.append(event(3))
    log.append(event(4, action="deleted", board=None, fields={}))
    assert [e.cursor for e in log.after("acme", 0, 10, EventFilter(types=("ticket",))).events] == [1, 3, 4]
    assert [e.cursor for e in log.after("acme", 0, 10, EventFilter(types=("ticket.added", "time"))).events] == [1, 2]
    assert [e.cursor for e in log.after("acme", 0, 10, EventFilter(board="service desk")).events] == [1, 3]
    time_entry = log.after("acme", 0, 10, EventFilter(board="ALERTS")).events[0]
    assert (time_entry.type, time_entry.board, time_entry.fields) == (
        "time",
        "Alerts",
        {"ticket_id": 1001, "hours": 0.5},
    )
    # A filtered page that finds nothing more still moves the cursor to the newest event.
    page = log.after("acme", 0, 10, EventFilter(types=("company",)))
    assert page.events == [] and page.next_cursor == 4


def test_a_cursor_past_the_newest_event_is_refused(log):
    log.append(event(1))
    with pytest.raises(CursorAhead) as ahead:
        log.after("acme", 2, 10)
    assert (ahead.value.cursor, ahead.value.head) == (2, 1)


def test_events_and_cursors_survive_reopening_the_file(tmp_path):
    first = SqliteEventLog(tmp_path / "events.sqlite3")
    first.append(event(1))
    first.append(event(2))
    first.close()
    again = SqliteEventLog(tmp_path / "events.sqlite3")
    assert again.append(event(2)) is None  # still known
    assert again.append(event(3)).cursor == 3
    assert [e.fields["summary"] for e in again.after("acme", 0, 10).events] == ["Ticket 1", "Ticket 2", "Ticket 3"]
    again.close()


def test_the_file_is_readable_by_its_owner_only(log):
    log.append(event(1))
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600


def test_retention_drops_old_and_surplus_events_and_cursors_never_go_back(tmp_path):
    now = [T0 + timedelta(days=30)]
    log = SqliteEventLog(
        tmp_path / "events.sqlite3", retention=timedelta(days=7), max_per_tenant=3, clock=lambda: now[0]
    )
    log.append(event(1, received=T0))  # 30 days old
    for n in range(2, 8):
        log.append(event(n, received=now[0]))
    log.maintain()
    assert [e.cursor for e in log.after("acme", 0, 10).events] == [5, 6, 7]
    page = log.after("acme", 1, 10)
    assert page.gap and [e.cursor for e in page.events] == [5, 6, 7]
    assert not log.after("acme", 4, 10).gap
    assert log.append(event(8, received=now[0])).cursor == 8
    # Everything gone: a cursor before it knows it missed events.
    now[0] += timedelta(days=8)
    log.maintain()
    page = log.after("acme", 6, 10)
    assert page.events == [] and page.gap and page.next_cursor == 8
    log.close()


def test_listeners_hear_of_new_events_not_of_repeats(log):
    heard: list[str] = []
    unsubscribe = log.subscribe(heard.append)
    log.append(event(1))
    log.append(event(1))
    log.append(event(2, tenant="globex"))
    unsubscribe()
    log.append(event(3))
    assert heard == ["acme", "globex"]


def test_size_counts_the_file_and_the_events_of_each_tenant(log):
    for n in range(1, 4):
        log.append(event(n))
    log.append(event(1, tenant="globex"))
    size = log.size()
    assert size.events == {"acme": 3, "globex": 1} and size.bytes > 0 and size.path == log.path
