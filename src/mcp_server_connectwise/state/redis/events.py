"""The event log in Redis, for several replicas: one stream per tenant, cursors every replica shares, and the
notification of each new event to the listeners of every replica.

- A tenant's events are the stream `{prefix}:{tenant}:events`, each under the entry id `0-CURSOR`: the cursor
  comes from the tenant's counter (`...:events:head`, never reset, so never reused), and a read after a cursor
  is a range of the stream. An entry holds `r` (when it was received, in ms) and `e` (the event, as JSON).
- `append` is one script: it refuses a `message_id` the tenant has had within the retention (a key per message
  id, expiring with it), takes the next cursor, adds the entry (trimming the stream to `max_per_tenant`), and
  publishes the tenant on the events channel - all or nothing, so an answered callback is stored.
- Every replica listens on that channel (`start`) and tells its listeners of events other replicas stored. A
  replica that lost the channel for a while (Redis gone) may have missed some: when it is back, it tells its
  listeners of every tenant it knows of, since notifications only say "read again".
- `maintain` drops the events older than the retention from the streams of the tenants this replica stored
  events for (every tenant that receives callbacks is some replica's).

A Redis that does not answer makes every use raise `EventLogUnavailable`: the receiver answers 503 (ConnectWise
delivers again later), and get_ticket_events says so. There is no local fallback: events stored only here would
be missed by the other replicas' cursors.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from mcp_server_connectwise.state.errors import StateUnavailable
from mcp_server_connectwise.state.events import (
    ALL_EVENTS,
    CursorAhead,
    Event,
    EventFilter,
    EventLogUnavailable,
    EventPage,
    Listeners,
    NewEvent,
    page_after,
)
from mcp_server_connectwise.state.redis.connection import UNREACHABLE, RedisConnection

logger = logging.getLogger(__name__)

READ_BATCH = 200  # entries a read takes from the stream at a time while it filters
LISTEN_POLL_SECONDS = 1.0  # how long a wait for the channel lasts before it checks the connection again
MAINTAIN_EVERY_SECONDS = 60.0

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

# KEYS: the stream. ARGV: the oldest received ms kept. Drops the entries received before it, oldest first
# (entries are in order of arrival), and returns how many went.
_EXPIRE = """
local dropped = 0
while true do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 100)
  if #oldest == 0 then return dropped end
  for _, entry in ipairs(oldest) do
    if tonumber(entry[2][2]) >= tonumber(ARGV[1]) then
      redis.call('XTRIM', KEYS[1], 'MINID', entry[1])
      return dropped
    end
    redis.call('XDEL', KEYS[1], entry[1])
    dropped = dropped + 1
  end
end
"""


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


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
    """`EventLog` in the Redis of `connection`, keeping events `retention` long and `max_per_tenant` per tenant."""

    def __init__(
        self,
        connection: RedisConnection,
        *,
        retention: timedelta = timedelta(days=7),
        max_per_tenant: int = 100_000,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._connection = connection
        self.retention = retention
        self.max_per_tenant = max_per_tenant
        self._clock = clock
        self._append = connection.script(_APPEND)
        self._expire = connection.script(_EXPIRE)
        self._channel = f"{connection.prefix}:events"
        self._listeners = Listeners()
        self._listening: asyncio.Task[None] | None = None
        self._known: set[str] = set()  # tenants whose events this replica stored, read or was told of
        self._stored_for: set[str] = set()  # tenants whose retention this replica applies
        self._maintained: datetime | None = None

    def __repr__(self) -> str:
        return f"RedisEventLog({self._connection.shown!r})"

    def _key(self, tenant: str, *parts: str) -> str:
        return self._connection.key(tenant, "events", *parts)

    async def _run(self, use: Callable[[Any], Any]) -> Any:
        try:
            return await self._connection.run(use)
        except StateUnavailable as exc:
            raise EventLogUnavailable(
                f"The event store cannot be used: {exc}.",
                "Start Redis or correct [state] url; events are stored and read again once it answers.",
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
            _millis(event.received),
            _encoded(event),
            self._channel,
            notice,
        ]
        cursor = await self._run(lambda client: self._append(keys=keys, args=args, client=client))
        if cursor is None:
            return None
        self._known.add(event.tenant)
        self._stored_for.add(event.tenant)
        self._listeners.tell(event.tenant)  # this replica's own: its channel message is not waited for
        return Event(**{**event.__dict__, "cursor": int(cursor)})

    async def _head_and_oldest(self, client: Any, tenant: str) -> tuple[int, int | None]:
        async with client.pipeline(transaction=True) as pipe:
            head, oldest = await pipe.get(self._key(tenant, "head")).xrange(self._key(tenant), count=1).execute()
        return int(head or 0), _cursor(oldest[0][0]) if oldest else None

    async def after(self, tenant: str, cursor: int, limit: int, match: EventFilter = ALL_EVENTS) -> EventPage:
        self._known.add(tenant)

        async def read(client: Any) -> EventPage:
            head, oldest = await self._head_and_oldest(client, tenant)
            if cursor > head:
                raise CursorAhead(cursor, head)
            matching: list[Event] = []
            start = f"(0-{cursor}"
            while len(matching) <= limit:  # up to head only: what is added meanwhile is the next read's
                entries = await client.xrange(self._key(tenant), min=start, max=f"0-{head}", count=READ_BATCH)
                if not entries:
                    break
                matching += [event for event in (_decoded(tenant, *entry) for entry in entries) if match.matches(event)]
                start = f"({entries[-1][0]}"
            return page_after(cursor, limit, head, oldest, matching[: limit + 1])

        page: EventPage = await self._run(read)
        return page

    async def latest(self, tenant: str, limit: int, match: EventFilter = ALL_EVENTS) -> EventPage:
        self._known.add(tenant)

        async def read(client: Any) -> EventPage:
            head, _oldest = await self._head_and_oldest(client, tenant)
            newest_first: list[Event] = []
            end = f"0-{head}"
            while len(newest_first) < limit:
                entries = await client.xrevrange(self._key(tenant), max=end, min="-", count=READ_BATCH)
                if not entries:
                    break
                newest_first += [
                    event for event in (_decoded(tenant, *entry) for entry in entries) if match.matches(event)
                ]
                end = f"({entries[-1][0]}"
            return EventPage(list(reversed(newest_first[:limit])), head, False)

        page: EventPage = await self._run(read)
        return page

    async def count(self, tenant: str) -> int:
        """The events kept for `tenant`."""
        kept: int = await self._run(lambda client: client.xlen(self._key(tenant)))
        return kept

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        return self._listeners.add(listener)

    async def start(self) -> None:
        if self._listening is None or self._listening.done():
            self._listening = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        missed = False  # the channel was lost: notifications may have gone by unheard
        while True:
            pubsub = self._connection.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while self._connection.reachable:  # the connection's watch notices a Redis gone silent
                    if missed:  # subscribed again, with the store answering: whatever went by is to be read
                        missed = False
                        for tenant in sorted(self._known):
                            self._listeners.tell(tenant)
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_POLL_SECONDS)
                    if message is not None:
                        self._heard(message["data"])
                missed = True
            except UNREACHABLE as exc:
                if not missed:
                    logger.warning("the events channel of %s is lost (%s)", self._connection.shown, type(exc).__name__)
                missed = True
            finally:
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
            self._known.add(tenant)
            self._listeners.tell(tenant)

    async def maintain(self) -> None:
        now = self._clock()
        if self._maintained is not None and now - self._maintained < timedelta(seconds=MAINTAIN_EVERY_SECONDS):
            return
        self._maintained = now
        cutoff = _millis(now - self.retention)
        for tenant in sorted(self._stored_for):
            stream = self._key(tenant)

            async def expire(client: Any, stream: str = stream) -> Any:
                return await self._expire(keys=[stream], args=[cutoff], client=client)

            await self._run(expire)

    async def aclose(self) -> None:
        listening, self._listening = self._listening, None
        if listening is not None:
            listening.cancel()
            try:
                await listening
            except asyncio.CancelledError:
                pass
