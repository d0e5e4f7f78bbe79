"""The event log: each verified ConnectWise callback, once, in order of arrival, per tenant.

`EventLog` is the interface the receiver, the events tool and the resource notifications use, with two
implementations: `SqliteEventLog` here (the embedded default) and `state.redis.events.RedisEventLog` (for
several server processes sharing one Redis):

- `append` stores an event unless its tenant already has one with the same `message_id` (ConnectWise repeats
  deliveries), giving it the tenant's next cursor: 1, 2, 3, ... never reused, also after old events go;
- `after` reads the events after a cursor, oldest first; `latest` the newest few (and the cursor to go on from);
- `subscribe` registers a listener told the tenant of every new event (after it is stored); `start` (awaited
  once the server runs) begins telling them of events other processes stored, where the log can;
- `maintain` applies retention (by age and by count per tenant); the receiver calls it after answering.

`SqliteEventLog` is one SQLite file (WAL, so readers never wait for the writer and several processes can share
it), opened on first use, surviving restarts. A new event reaches the listeners of the process that stored it
only. Its calls are short and local, so they run on the event loop; only retention goes to a thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mcp_server_connectwise.config import AppConfig

logger = logging.getLogger(__name__)

# How often retention runs, at most (it is cheap, but not free at every append).
MAINTAIN_EVERY_SECONDS = 60.0
MAINTAIN_EVERY_APPENDS = 1000
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class NewEvent:
    """A verified callback as an event: what happened to which record, and a compact summary of it."""

    tenant: str
    message_id: str
    type: str  # ConnectWise's record type: ticket, time, ...
    action: str  # added, updated, deleted
    record_id: int
    received: datetime
    board: str | None = None  # the ticket's board, for filtering
    fields: dict[str, Any] = field(default_factory=dict)  # the summary (JSON values)


@dataclass(frozen=True)
class Event(NewEvent):
    cursor: int = 0  # the tenant's sequence number of this event


@dataclass(frozen=True)
class EventFilter:
    """Which events a read wants: `types` ("ticket", or "ticket.added" for one action; none: all) and a board
    (any case; none: all)."""

    types: tuple[str, ...] = ()
    board: str | None = None

    def matches(self, event: NewEvent) -> bool:
        if self.types and not any(kind in (event.type, f"{event.type}.{event.action}") for kind in self.types):
            return False
        return self.board is None or (event.board or "").casefold() == self.board.casefold()


ALL_EVENTS = EventFilter()


@dataclass(frozen=True)
class EventPage:
    events: list[Event]  # oldest first
    next_cursor: int  # read on after this
    has_more: bool  # more events after next_cursor match already
    gap: bool = False  # events after the cursor asked for were dropped by retention before they were read


class EventLogUnavailable(Exception):
    """The event store cannot be read or written: str() is one sentence saying why (without a path or a
    password), `remedy` one saying what to check."""

    def __init__(self, reason: str, remedy: str) -> None:
        super().__init__(reason)
        self.remedy = remedy


class CursorAhead(Exception):
    """A cursor past the tenant's newest event: not one this log gave out (or the log was replaced)."""

    def __init__(self, cursor: int, head: int) -> None:
        super().__init__(f"cursor {cursor} is past the newest event ({head})")
        self.cursor, self.head = cursor, head


class EventLog(Protocol):
    async def append(self, event: NewEvent) -> Event | None:
        """Store `event` and return it with its cursor; None if its tenant has its message_id already."""
        ...

    async def after(self, tenant: str, cursor: int, limit: int, match: EventFilter = ALL_EVENTS) -> EventPage:
        """Up to `limit` matching events after `cursor`, oldest first. CursorAhead past the newest event."""
        ...

    async def latest(self, tenant: str, limit: int, match: EventFilter = ALL_EVENTS) -> EventPage:
        """The newest `limit` matching events, oldest first, and the tenant's newest cursor."""
        ...

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Tell `listener` the tenant of each new event; returns the unsubscribe function."""
        ...

    async def start(self) -> None:
        """Begin telling the listeners of events that other processes store (where this log can know of them)."""
        ...

    async def maintain(self) -> None:
        """Apply retention, if it is due."""
        ...

    async def aclose(self) -> None: ...


class Listeners:
    """The listeners of one log: each is told a tenant, and one that raises does not stop the others."""

    def __init__(self) -> None:
        self._listeners: dict[object, Callable[[str], None]] = {}

    def add(self, listener: Callable[[str], None]) -> Callable[[], None]:
        token = object()
        self._listeners[token] = listener
        return lambda: self._listeners.pop(token, None) and None

    def tell(self, tenant: str) -> None:
        for listener in list(self._listeners.values()):
            try:
                listener(tenant)
            except Exception:  # one broken listener must not stop the others, nor fail the append
                logger.exception("event listener failed")


@dataclass(frozen=True)
class StoreSize:
    path: Path
    bytes: int  # the file and its write-ahead log
    events: dict[str, int]  # per tenant


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class SqliteEventLog:
    """`EventLog` in a SQLite file at `path`, keeping events `retention` long and `max_per_tenant` per tenant."""

    def __init__(
        self,
        path: Path,
        *,
        retention: timedelta = timedelta(days=7),
        max_per_tenant: int = 100_000,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.path = path
        self.retention = retention
        self.max_per_tenant = max_per_tenant
        self._clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._listeners = Listeners()
        self._appended = 0
        self._maintained: datetime | None = None

    def __repr__(self) -> str:
        return f"SqliteEventLog({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # 0600 before SQLite opens it: events carry customers' ticket summaries.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # in WAL: a crash of the process loses nothing committed
            if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                db.executescript(
                    f"""
                    BEGIN IMMEDIATE;
                    CREATE TABLE IF NOT EXISTS heads (tenant TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
                    CREATE TABLE IF NOT EXISTS events (
                        tenant TEXT NOT NULL, cursor INTEGER NOT NULL, message_id TEXT NOT NULL,
                        received INTEGER NOT NULL, type TEXT NOT NULL, action TEXT NOT NULL,
                        record_id INTEGER NOT NULL, board TEXT, fields TEXT NOT NULL,
                        PRIMARY KEY (tenant, cursor)
                    ) WITHOUT ROWID;
                    CREATE UNIQUE INDEX IF NOT EXISTS events_message ON events (tenant, message_id);
                    CREATE INDEX IF NOT EXISTS events_received ON events (received);
                    PRAGMA user_version = {SCHEMA_VERSION};
                    COMMIT;
                    """
                )
            self._db = db
        return self._db

    @contextmanager
    def _transaction(self, kind: str = "") -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                db = self._connection()
                db.execute(f"BEGIN {kind}")
                try:
                    yield db
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except (OSError, sqlite3.Error) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise EventLogUnavailable(
                    f"The event store cannot be used ({reason.lower()}).",
                    "Check [events] path in the config and the disk it is on.",
                ) from None

    async def append(self, event: NewEvent) -> Event | None:
        with self._transaction("IMMEDIATE") as db:
            if db.execute(
                "SELECT 1 FROM events WHERE tenant = ? AND message_id = ?", (event.tenant, event.message_id)
            ).fetchone():
                return None
            (cursor,) = db.execute(
                "INSERT INTO heads (tenant, last) VALUES (?, 1) ON CONFLICT (tenant) DO UPDATE SET last = last + 1 "
                "RETURNING last",
                (event.tenant,),
            ).fetchone()
            db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.tenant,
                    cursor,
                    event.message_id,
                    millis(event.received),
                    event.type,
                    event.action,
                    event.record_id,
                    event.board.casefold() if event.board else None,
                    json.dumps({**event.fields, "board": event.board}, separators=(",", ":"), ensure_ascii=False),
                ),
            )
        self._appended += 1
        self._listeners.tell(event.tenant)
        return Event(**{**event.__dict__, "cursor": cursor})

    async def after(self, tenant: str, cursor: int, limit: int, match: EventFilter = ALL_EVENTS) -> EventPage:
        where, values = _where(match)
        with self._transaction() as db:  # one snapshot: the head and the rows agree
            head = _head(db, tenant)
            if cursor > head:
                raise CursorAhead(cursor, head)
            rows = db.execute(
                f"SELECT * FROM events WHERE tenant = ? AND cursor > ?{where} ORDER BY cursor LIMIT ?",
                (tenant, cursor, *values, limit + 1),
            ).fetchall()
            (oldest,) = db.execute("SELECT MIN(cursor) FROM events WHERE tenant = ?", (tenant,)).fetchone()
        gap = (oldest is None and head > cursor) or (oldest is not None and oldest > cursor + 1)
        return page_after(limit, head, gap, [_event(row) for row in rows])

    async def latest(self, tenant: str, limit: int, match: EventFilter = ALL_EVENTS) -> EventPage:
        where, values = _where(match)
        with self._transaction() as db:
            head = _head(db, tenant)
            rows = db.execute(
                f"SELECT * FROM events WHERE tenant = ?{where} ORDER BY cursor DESC LIMIT ?", (tenant, *values, limit)
            ).fetchall()
        return EventPage([_event(row) for row in reversed(rows)], head, False)

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        return self._listeners.add(listener)

    async def start(self) -> None:
        return None  # other processes' appends are not seen here

    async def maintain(self) -> None:
        await asyncio.to_thread(self._maintain)

    def _maintain(self) -> None:
        now = self._clock()
        due = self._maintained is None or now - self._maintained >= timedelta(seconds=MAINTAIN_EVERY_SECONDS)
        if not due and self._appended < MAINTAIN_EVERY_APPENDS:
            return
        self._maintained, self._appended = now, 0
        cutoff = millis(now - self.retention)
        with self._transaction("IMMEDIATE") as db:
            db.execute("DELETE FROM events WHERE received < ?", (cutoff,))
            # Cursors are consecutive, so the newest `max_per_tenant` are those within that of the head.
            for tenant, head in db.execute("SELECT tenant, last FROM heads").fetchall():
                db.execute("DELETE FROM events WHERE tenant = ? AND cursor <= ?", (tenant, head - self.max_per_tenant))

    def size(self) -> StoreSize:
        """The file's size with its write-ahead log, and the events kept per tenant."""
        with self._transaction() as db:
            counts = dict(db.execute("SELECT tenant, COUNT(*) FROM events GROUP BY tenant ORDER BY tenant"))
        on_disk = sum(
            candidate.stat().st_size
            for candidate in (self.path, self.path.with_name(self.path.name + "-wal"))
            if candidate.exists()
        )
        return StoreSize(self.path, on_disk, counts)

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def page_after(limit: int, head: int, gap: bool, matching: list[Event]) -> EventPage:
    """The page of `after(cursor, limit)` from up to `limit + 1` `matching` events after the cursor (oldest
    first), the tenant's newest cursor `head`, and whether events after the cursor were dropped unread."""
    events = matching[:limit]
    has_more = len(matching) > limit
    return EventPage(events, events[-1].cursor if has_more else head, has_more, gap)


def _head(db: sqlite3.Connection, tenant: str) -> int:
    row = db.execute("SELECT last FROM heads WHERE tenant = ?", (tenant,)).fetchone()
    return row[0] if row else 0


def _where(match: EventFilter) -> tuple[str, list[Any]]:
    clauses, values = [], []
    if match.types:
        kinds = []
        for kind in match.types:
            record_type, _, action = kind.partition(".")
            kinds.append("(type = ? AND action = ?)" if action else "type = ?")
            values += [record_type, action] if action else [record_type]
        clauses.append(f"({' OR '.join(kinds)})")
    if match.board is not None:
        clauses.append("board = ?")
        values.append(match.board.casefold())
    return "".join(f" AND {clause}" for clause in clauses), values


def _event(row: tuple) -> Event:
    tenant, cursor, message_id, received, kind, action, record_id, _board_key, fields = row
    data = json.loads(fields)
    board = data.pop("board", None)
    return Event(
        tenant=tenant,
        message_id=message_id,
        type=kind,
        action=action,
        record_id=record_id,
        received=datetime.fromtimestamp(received / 1000, timezone.utc),
        board=board,
        fields=data,
        cursor=cursor,
    )


def event_log(config: AppConfig) -> SqliteEventLog:
    """The event store `config` names (`[events]`), opened on first use."""
    return SqliteEventLog(
        config.events_path,
        retention=timedelta(days=config.events.retention_days),
        max_per_tenant=config.events.max_events_per_tenant,
    )
