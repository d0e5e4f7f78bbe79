"""The event log in Redis, for several replicas: one stream per tenant, cursors every replica shares, and the
notification of each new event to the listeners of every replica.

- A tenant's events are the stream `{prefix}:{tenant}:events`, each under the entry id `0-CURSOR`: the cursor
  comes from the tenant's counter (`...:events:head`), and a read after a cursor is a range of the stream. An
  entry holds `r` (when it was received, in ms) and `e` (the event, as JSON).
- `append` is one script: it refuses a `message_id` the tenant has had within the retention (a key per message
  id, expiring with it), takes the next cursor, adds the entry (trimming the stream to `max_per_tenant`), and
  publishes the tenant on the events channel; a callback is answered only after it ran, so an answered
  callback is stored. Cursors never go back while Redis keeps its data: it needs persistence (`appendonly`)
  and `maxmemory-policy noeviction`, or a Redis restarted empty counts from 1 again (the README says so).
- A read takes the head first and the range up to it after: entries there are consecutive but for the oldest,
  which retention or another replica's append may drop meanwhile, so the gap is judged from what was read.
- Every replica listens on that channel (`start`) and tells its listeners of events other replicas stored. A
  replica that lost the channel for a while (Redis gone, or silent past SILENT_SECONDS) may have missed some:
  subscribed again, it tells its listeners of every tenant, since notifications only say "read again".
- `maintain` drops the events older than the retention, for every configured tenant.

A Redis that does not answer makes every use raise `EventLogUnavailable`: the receiver answers 503 and
get_ticket_events says so. There is no local fallback: events stored only here would be missed by the other
replicas' cursors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta, timezone
from typing import Any

from mcp_server_connectwise.state.errors import StateUnavailable
from mcp_server_connectwise.state.events import (
    ALL_EVENTS,
    MAINTAIN_EVERY_SECONDS,
    CursorAhead,
    Event,
    EventFilter,
    EventLogUnavailable,
    EventPage,
    Listeners,
    NewEvent,
    millis,
    page_after,
)
from mcp_server_connectwise.state.redis.connection import UNREACHABLE, RedisConnection, cancelling

logger = logging.getLogger(__name__)

READ_BATCH = 200  # entries a read takes from the stream at a time while it filters
# Entries one filtered read looks at, at most: past them it answers what it found and the cursor to go on from.
MAX_SCANNED = 5_000
LISTEN_POLL_SECONDS = 1.0  # how long a wait for the channel lasts before it checks the connection again
PING_SECONDS = 5.0  # the channel is pinged this often: a connection cut off without a word answers nothing
SILENT_SECONDS = 3 * PING_SECONDS  # nothing heard for this long: the channel is taken for lost

# KEYS: the message-id key, the head, the stream. ARGV: retention ms, max entries, received ms, the event,
# the channel, the notification. Returns the cursor, or nil for a message id the tenant has had.
_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local cursor = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[2], '0-' .. cursor, 'r', ARGV[3], 'e', ARGV[4])
redis.call('SET', KEYS[1], cursor, 'PX', ARGV[1])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return cursor
"""

# KEYS: the stream. ARGV: the oldest received ms kept. Drops the entries received before it (entries are in
# order of arrival): finds the first to keep within 10,000 and trims to it; past that, the next run goes on.
_EXPIRE = """
local start = '-'
for _ = 1, 100 do
  local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 100)
  if #entries == 0 then return redis.call('XTRIM', KEYS[1], 'MAXLEN', 0) end
  for _, entry in ipairs(entries) do
    if tonumber(entry[2][2]) >= tonumber(ARGV[1]) then return redis.call('XTRIM', KEYS[1], 'MINID', entry[1]) end
  end
  start = '(' .. entries[#entries][1]
end
local last = tonumber(string.match(start, '^%(0%-(%d+)$'))
return redis.call('XTRIM', KEYS[1], 'MINID', '0-' .. (last + 1))
"""


def _cursor(entry_id: str) -> int:
    return int(entry_id.partition("-")[2])


def _encoded(event: NewEvent) -> str:
    record = {
        "m": event.message_id,
        "t": event.type,
        "a": event.action,
        "i": event.record_id,
        "b": event.board,
        "f": event.fields,
    }
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def _decoded(tenant: str, entry_id: str, fields: dict[str, str]) -> Event:
    record = json.loads(fields["e"])
    return Event(
        tenant=tenant,
        message_id=record["m"],
        type=record["t"],
        action=record["a"],
        record_id=record["i"],
        received=datetime.fromtimestamp(int(fields["r"]) / 1000, timezone.utc),
        board=record["b"],
        fields=record["f"],
        cursor=_cursor(entry_id),
    )


class RedisEventLog:
    """`EventLog` in the Redis of `connection` for `tenants` (the configured ones: whose retention this replica
    applies, and whose listeners it tells to read again after losing the channel), keeping events `retention`
    long and `max_per_tenant` per tenant."""

    def __init__(
        self,
        connection: RedisConnection,
        tenants: Collection[str] = (),
        *,
        retention: timedelta = timedelta(days=7),
        max_per_tenant: int = 100_000,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._connection = connection
        self._tenants = set(tenants)  # and any other this replica stores or reads events of
        self.retention = retention
        self.max_per_tenant = max_per_tenant
        self._clock = clock
        self._append = connection.script(_APPEND)
        self._expire = connection.script(_EXPIRE)
        self._channel = f"{connection.prefix}:events"
        self._listeners = Listeners()
        self._listening: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # set while subscribed to the channel
        self._maintained: datetime | None = None

    def __repr__(self) -> str:
        return f"RedisEventLog({self._connection.shown!r})"

    def _key(self, tenant: str, *parts: str) -> str:
        return self._connection.key(tenant, "events", *parts)

    async def _run(self, use: Callable[[Any], Any], *, retry: bool = False) -> Any:
        try:
            return await self._connection.run(use, retry=retry)
        except StateUnavailable:  # the connection logged what and why
            raise EventLogUnavailable(
                "The shared event store (Redis, [state] url) does not answer.",
                "Start Redis or correct [state] url, then try again.",
            ) from None

    async def append(self, event: NewEvent) -> Event | None:
        notice = json.dumps({"tenant": event.tenant, "replica": self._connection.replica})
        keys = [
            self._key(event.tenant, "message", event.message_id),
            self._key(event.tenant, "head"),
            self._key(event.tenant),
        ]
        retention_ms = max(1, int(self.retention.total_seconds() * 1000))
        args: list[str | int] = [
            retention_ms,
            self.max_per_tenant,
            millis(event.received),
            _encoded(event),
            self._channel,
            notice,
        ]
        # Not retried: had the first run stored it, a second would answer "a repeat" for a new event.
        cursor = await self._run(lambda client: self._append(keys=keys, args=args, client=client))
        self._tenants.add(event.tenant)
        if cursor is None:
            return None
        self._listeners.tell(event.tenant)  # this replica's own: its channel message is not waited for
        return Event(**{**event.__dict__, "cursor": int(cursor)})

    async def _head(self, client: Any, tenant: str) -> int:
        return int(await client.get(self._key(tenant, "head")) or 0)

    async def after(self, tenant: str, cursor: int, limit: int, match: EventFilter = ALL_EVENTS) -> EventPage:
        self._tenants.add(tenant)

        async def read(client: Any) -> EventPage:
            head = await self._head(client, tenant)
            if cursor > head:
                raise CursorAhead(cursor, head)
            matching: list[Event] = []
            expected, gap, scanned = cursor + 1, False, 0  # the cursor the next entry read has, if none went
            while len(matching) <= limit and expected <= head:  # up to head: what comes later is the next read's
                if scanned >= MAX_SCANNED:  # enough looked at: the caller goes on from here
                    return EventPage(matching, expected - 1, True, gap)
                batch = await client.xrange(
                    self._key(tenant), min=f"(0-{expected - 1}", max=f"0-{head}", count=READ_BATCH
                )
                if not batch:
                    gap = True  # entries up to head were dropped (retention) before they were read
                    break
                gap = gap or _cursor(batch[0][0]) > expected
                expected, scanned = _cursor(batch[-1][0]) + 1, scanned + len(batch)
                matching += [event for event in (_decoded(tenant, *entry) for entry in batch) if match.matches(event)]
            return page_after(limit, head, gap, matching[: limit + 1])

        page: EventPage = await self._run(read, retry=True)
        return page

    async def latest(self, tenant: str, limit: int, match: EventFilter = ALL_EVENTS) -> EventPage:
        self._tenants.add(tenant)

        async def read(client: Any) -> EventPage:
            head = await self._head(client, tenant)
            newest_first: list[Event] = []
            end, scanned = f"0-{head}", 0
            while len(newest_first) < limit and scanned < MAX_SCANNED:
                batch = await client.xrevrange(self._key(tenant), max=end, min="-", count=READ_BATCH)
                if not batch:
                    break
                scanned += len(batch)
                newest_first += [
                    event for event in (_decoded(tenant, *entry) for entry in batch) if match.matches(event)
                ]
                end = f"({batch[-1][0]}"
            return EventPage(list(reversed(newest_first[:limit])), head, False)

        page: EventPage = await self._run(read, retry=True)
        return page

    async def count(self, tenant: str) -> int:
        """The events kept for `tenant`."""
        kept: int = await self._run(lambda client: client.xlen(self._key(tenant)), retry=True)
        return kept

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        return self._listeners.add(listener)

    async def start(self) -> None:
        await self._connection.check()  # and so its watch runs: a store gone quiet is noticed
        if self._listening is None or self._listening.done():
            self._listening = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        missed = False  # the channel was lost: notifications may have gone by unheard
        reported: str | None = None  # the kind of failure last logged, so that a long outage logs once
        while True:
            pubsub = self._connection.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                heard = pinged = time.monotonic()
                while self._connection.reachable:  # the connection's watch notices a Redis gone
                    self.listening.set()
                    if missed:  # subscribed again, with the store answering: whatever went by is to be read
                        missed, reported = False, None
                        for tenant in sorted(self._tenants):
                            self._listeners.tell(tenant)
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_POLL_SECONDS)
                    now = time.monotonic()
                    if message is not None:
                        heard = now
                        if message.get("type") == "message":
                            self._heard(message["data"])
                    if now - heard > SILENT_SECONDS:
                        raise ConnectionError("the channel answers nothing, not even a ping")
                    if now - pinged >= PING_SECONDS:
                        await pubsub.ping()
                        pinged = now
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store gone, or anything else: listen again, and say so once
                if cancelling():  # the client cut a read off because we are cancelled
                    raise asyncio.CancelledError from None
                if type(exc).__name__ != reported:
                    reported = type(exc).__name__
                    logger.warning("the events channel of %s is lost (%s)", self._connection.shown, reported)
            finally:
                self.listening.clear()
                missed = True
                try:
                    await pubsub.aclose()
                except UNREACHABLE:
                    pass
            await asyncio.sleep(LISTEN_POLL_SECONDS)

    def _heard(self, data: str) -> None:
        try:
            notice = json.loads(data)
            tenant, replica = notice["tenant"], notice["replica"]
        except (ValueError, TypeError, KeyError):
            return  # not one of ours
        if replica != self._connection.replica and isinstance(tenant, str):
            self._tenants.add(tenant)
            self._listeners.tell(tenant)

    async def maintain(self) -> None:
        now = self._clock()
        if self._maintained is not None and now - self._maintained < timedelta(seconds=MAINTAIN_EVERY_SECONDS):
            return
        self._maintained = now
        cutoff = millis(now - self.retention)
        for tenant in sorted(self._tenants):
            stream = self._key(tenant)

            async def expire(client: Any, stream: str = stream) -> Any:
                return await self._expire(keys=[stream], args=[cutoff], client=client)

            await self._run(expire, retry=True)

    async def aclose(self) -> None:
        listening, self._listening = self._listening, None
        if listening is not None:
            listening.cancel()
            await asyncio.wait({listening}, timeout=2 * LISTEN_POLL_SECONDS)
