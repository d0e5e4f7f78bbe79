"""A tenant's rate budget shared by every replica: `connectwise.ratelimit.RateBudget`'s token bucket and its
round-robin by caller, kept in Redis and changed only by one Lua script (atomic: no read-then-write race between
replicas, and one clock, the Redis server's).

The script refills the bucket at `requests_per_minute / 60` a second up to the burst, then hands its tokens to
the waiting requests in turn. Turns are rounds: a caller's first waiting request joins the round being served,
each further one the round after its previous one, so a caller with a hundred requests queued delays another's
one by a single turn, on whichever replicas they wait. A request that would wait past `max_wait` is refused at
once with its wait (`BudgetWaitTooLong`), as the local budget does.

A waiting request is granted by whichever replica's script runs when its turn comes; each replica polls for its
own grants (once per token, at most a quarter of a second apart). A waiting entry carries the time its caller
gives up: the script skips entries of a replica that died, without spending a token on them.

When the store cannot be reached, the replica paces its requests with a budget of its own, sized to its share
(the tenant's budget over the replicas that were heartbeating), and requests already waiting move to it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Hashable

from mcp_server_connectwise.connectwise.ratelimit import BudgetWaitTooLong, RateBudget, default_burst
from mcp_server_connectwise.state.errors import StateUnavailable
from mcp_server_connectwise.state.redis.connection import RedisConnection

logger = logging.getLogger(__name__)

# A request without a deadline gives up its place after this long (its replica may have died).
DEFAULT_PATIENCE_SECONDS = 300.0
# Its place outlives its caller's deadline by this much (clocks and polls differ a little).
PATIENCE_MARGIN_SECONDS = 5.0
MIN_POLL_SECONDS = 0.002
MAX_POLL_SECONDS = 0.25
# The keys of a tenant no replica has used for this long go.
IDLE_MILLISECONDS = 600_000
# Request ids, unique in this process: a grant left for a request that gave up never serves a later one.
_request_ids = itertools.count(1)

_BUDGET = """
local state, waiting, callers = KEYS[1], KEYS[2], KEYS[3]
local op, rate, capacity, replica = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local kept = redis.call('HMGET', state, 'tokens', 'at', 'round')
local tokens = tonumber(kept[1]) or capacity
local round = tonumber(kept[3]) or 0
tokens = math.min(capacity, tokens + math.max(0, now - (tonumber(kept[2]) or now)) * rate)

-- The tokens there are go to the waiting entries: lowest round first, in arrival order within a round.
while tokens >= 1 do
  local head = redis.call('ZRANGE', waiting, 0, 0, 'WITHSCORES')
  if #head == 0 then break end
  redis.call('ZREM', waiting, head[1])
  round = tonumber(head[2])
  local to, id, gives_up = string.match(head[1], '^%d+|([^|]+)|([^|]+)|(%d+)$')
  if tonumber(gives_up) > now then
    tokens = tokens - 1
    local field = 'g:' .. to
    local granted = redis.call('HGET', state, field)
    redis.call('HSET', state, field, granted and (granted .. ' ' .. id) or id)
  end
end
-- A caller whose latest entry is in an earlier round joins the current one anyway.
redis.call('ZREMRANGEBYSCORE', callers, '-inf', '(' .. round)

local result
if op == 'acquire' then
  local caller, id, max_wait, patience = ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
  if tokens >= 1 and redis.call('ZCARD', waiting) == 0 then
    tokens = tokens - 1
    result = {'granted'}
  else
    local last = tonumber(redis.call('ZSCORE', callers, caller))
    local mine = last and math.max(round, last + 1) or round
    local wait = math.max(0, (redis.call('ZCOUNT', waiting, '-inf', mine) + 1 - tokens) / rate)
    if max_wait >= 0 and wait > max_wait then
      result = {'refused', tostring(wait)}
    else
      local seq = redis.call('HINCRBY', state, 'seq', 1)
      local entry = string.format('%015d|%s|%s|%d', seq, replica, id, math.floor(now + patience))
      redis.call('ZADD', waiting, mine, entry)
      redis.call('ZADD', callers, mine, caller)
      result = {'queued', tostring(wait), entry}
    end
  end
elseif op == 'cancel' then
  redis.call('ZREM', waiting, ARGV[5])
  result = {'cancelled'}
else
  local field = 'g:' .. replica
  local granted = redis.call('HGET', state, field) or ''
  redis.call('HDEL', state, field)
  local next_token = -1
  if redis.call('ZCARD', waiting) > 0 then next_token = math.max(0, (1 - tokens) / rate) end
  result = {'polled', tostring(next_token), granted}
end
redis.call('HSET', state, 'tokens', tostring(tokens), 'at', tostring(now), 'round', tostring(round))
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, IDLE_MILLISECONDS) end
return result
"""


class SharedRateBudget:
    """One tenant's budget, shared through the store's Redis; see the module's docstring."""

    def __init__(self, connection: RedisConnection, tenant: str, requests_per_minute: int) -> None:
        if requests_per_minute < 1:
            raise ValueError("requests_per_minute must be at least 1")
        self.requests_per_minute = requests_per_minute
        self._connection = connection
        self._keys = [connection.key(tenant, "budget", part) for part in ("bucket", "waiting", "callers")]
        self._rate = requests_per_minute / 60_000  # tokens a millisecond
        self._capacity = default_burst(requests_per_minute)
        self._script = connection.script(_BUDGET.replace("IDLE_MILLISECONDS", str(IDLE_MILLISECONDS)))
        self._waiting: dict[str, asyncio.Future[None]] = {}  # this replica's waiters, by id
        self._poller: asyncio.Task[None] | None = None
        self._fallback: RateBudget | None = None

    async def _run(self, op: str, *args: str | float) -> list[str]:
        head = (self._rate, self._capacity, self._connection.replica)
        return await self._connection.run(lambda client: self._script(self._keys, [op, *head, *args], client))

    async def acquire(self, caller: Hashable = None, *, max_wait: float | None = None) -> float:
        """Wait for this request's turn and count it; the seconds waited. `BudgetWaitTooLong` at once when the
        wait would be longer than `max_wait`."""
        if not self._connection.reachable:
            return await self._local().acquire(caller, max_wait=max_wait)
        started = time.monotonic()
        request = f"{next(_request_ids):x}"
        patience = DEFAULT_PATIENCE_SECONDS if max_wait is None else max_wait + PATIENCE_MARGIN_SECONDS
        try:
            answer = await self._run(
                "acquire",
                self._caller(caller),
                request,
                -1 if max_wait is None else max_wait * 1000,
                patience * 1000,
            )
        except StateUnavailable:
            return await self._local().acquire(caller, max_wait=max_wait)
        if answer[0] == "granted":
            return 0.0
        if answer[0] == "refused":
            raise BudgetWaitTooLong(float(answer[1]) / 1000)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[request] = waiter
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll())
        try:
            await waiter
        except StateUnavailable:
            waited = time.monotonic() - started
            remaining = None if max_wait is None else max(0.0, max_wait - waited)
            return waited + await self._local().acquire(caller, max_wait=remaining)
        except asyncio.CancelledError:  # the call gave up: its place goes (or, if already granted, its token)
            self._waiting.pop(request, None)
            asyncio.ensure_future(self._cancel(answer[2]))
            raise
        return time.monotonic() - started

    def _caller(self, caller: Hashable) -> str:
        # A caller is a principal's session of this process: the same object means nothing elsewhere.
        return f"{self._connection.replica}/{hash(caller) & 0xFFFFFFFFFFFF:x}"

    async def _cancel(self, entry: str) -> None:
        try:
            await self._run("cancel", entry)
        except StateUnavailable:
            pass  # its place expires with its patience

    async def _poll(self) -> None:
        while self._waiting:
            try:
                _, next_token, granted = await self._run("poll")
            except StateUnavailable as exc:
                waiting, self._waiting = self._waiting, {}
                for waiter in waiting.values():
                    if not waiter.done():
                        waiter.set_exception(exc)
                return
            for request in granted.split():
                served = self._waiting.pop(request, None)
                if served is not None and not served.done():
                    served.set_result(None)
            milliseconds = float(next_token)
            wait = MAX_POLL_SECONDS if milliseconds < 0 else milliseconds / 1000
            await asyncio.sleep(min(MAX_POLL_SECONDS, max(MIN_POLL_SECONDS, wait)))

    def _local(self) -> RateBudget:
        """This replica's own budget while the store is unreachable: its share of the tenant's."""
        share = max(1, self.requests_per_minute // max(1, self._connection.replicas))
        if self._fallback is None or self._fallback.requests_per_minute != share:
            logger.debug("pacing requests with this replica's share of the budget, %d/min", share)
            self._fallback = RateBudget(share)
        return self._fallback
