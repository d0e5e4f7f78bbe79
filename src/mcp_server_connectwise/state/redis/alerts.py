"""report_alert's per-key locks and state in Redis, so that replicas take turns on an alert as one process does.

The lock is a key set only if absent, with an expiry (`LOCK_SECONDS`): a replica that dies holding it holds it no
longer than that. Its value is a fencing token (a number that only grows, per tenant) and the holder's replica.
A holder that is merely slow (a long ConnectWise request, a pause) keeps it: it renews the expiry every third of
it while it holds it. A holder that was paused past the expiry has lost it, and must not write:

- every ConnectWise write made under the lock is checked against it just before it is sent (the lock's value
  must still be the holder's token; the check renews it too), and refused if lost - ConnectWise cannot check a
  token itself, so this check is the last word, and only a pause of a whole `LOCK_SECONDS` between the check
  and the request leaving could slip past it;
- the key's state (repeat counters, close/reopen history) is saved by a script that writes it only while the
  lock holds the holder's token, and never over a state a later token wrote.

Renewing rather than only fencing because ConnectWise writes, the ones that matter, cannot be fenced by the
server that receives them; fencing rather than only renewing because a renewal can arrive too late.

The state is one small hash per key, kept `STATE_DAYS` after its last report (then the key starts afresh, as
after a restart of the embedded store). Reports of one key on one replica queue for a local lock first, so only
one of them at a time polls the Redis lock.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from mcp_server_connectwise.state.alerts import AlertKeyState, KeyTurns
from mcp_server_connectwise.state.errors import LockLost, StateUnavailable
from mcp_server_connectwise.state.redis.connection import RedisConnection
from mcp_server_connectwise.state.store import checking_writes

logger = logging.getLogger(__name__)

LOCK_SECONDS = 10.0
STATE_DAYS = 7
FIRST_POLL_SECONDS = 0.005
MAX_POLL_SECONDS = 0.1

_TAKE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('PTTL', KEYS[1])} end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. '|' .. ARGV[1], 'PX', ARGV[2])
local taken = {1, token}
for _, value in ipairs(redis.call('HGETALL', KEYS[3])) do table.insert(taken, value) end
return taken
"""
_HOLD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_SAVE_AND_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(redis.call('HGET', KEYS[2], 'fence') or '0') > tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'fence', ARGV[2], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('DEL', KEYS[1])
return 1
"""


@dataclass
class _Held:
    lock: str  # the lock's key
    value: str  # its value while this holder has it: the fencing token and the replica
    token: int
    state: AlertKeyState
    lost: bool = False


class RedisAlertKeys:
    """The locks and states of one tenant's alert keys, in the store's Redis."""

    def __init__(self, connection: RedisConnection, tenant: str, *, lock_seconds: float = LOCK_SECONDS) -> None:
        self._connection = connection
        self._tenant = tenant
        self._lock_ms = int(lock_seconds * 1000)
        self._turns = KeyTurns()
        self._take = connection.script(_TAKE)
        self._hold = connection.script(_HOLD)
        self._save_and_release = connection.script(_SAVE_AND_RELEASE)

    def _key(self, key: str, *parts: str) -> str:
        return self._connection.key(self._tenant, "alert", key, *parts)

    @asynccontextmanager
    async def locked(self, key: str) -> AsyncIterator[AlertKeyState]:
        """The key's state, with its lock held for the block; `StateUnavailable` when the store cannot be reached
        (then nothing was locked), `LockLost` from a write the lost lock refused."""
        async with self._turns.taking(key):
            held = await self._acquire(key)
            renewing = asyncio.ensure_future(self._renew(held))

            async def check() -> None:
                if held.lost or not await self._still_held(held):
                    held.lost = True
                    raise LockLost(f"the lock of alert {key} expired while this server worked on it")

            try:
                with checking_writes(check):
                    yield held.state
            finally:
                renewing.cancel()
                await self._release(key, held)

    async def _acquire(self, key: str) -> _Held:
        lock = self._key(key, "lock")
        keys = [lock, self._connection.key(self._tenant, "alert-fence"), self._key(key)]
        poll = FIRST_POLL_SECONDS
        while True:
            taken = await self._connection.run(
                lambda client: self._take(keys, [self._connection.replica, self._lock_ms], client)
            )
            if taken[0] == 1:
                token = int(taken[1])
                fields = dict(zip(taken[2::2], taken[3::2], strict=True))
                fields.pop("fence", None)
                return _Held(lock, f"{token}|{self._connection.replica}", token, AlertKeyState.from_fields(fields))
            left = max(1, int(taken[1])) / 1000  # held by another report: try again soon, never past its expiry
            await asyncio.sleep(min(poll, left) * random.uniform(0.5, 1.0))
            poll = min(poll * 2, MAX_POLL_SECONDS)

    async def _still_held(self, held: _Held) -> bool:
        """Whether the lock still holds this holder's token, renewing it if so."""
        renewed = await self._connection.run(  # renewing twice is renewing: it may be retried
            lambda client: self._hold([held.lock], [held.value, self._lock_ms], client), retry=True
        )
        return bool(renewed)

    async def _renew(self, held: _Held) -> None:
        while not held.lost:
            await asyncio.sleep(self._lock_ms / 3000)
            try:
                held.lost = not await self._still_held(held)
            except StateUnavailable:
                pass  # no write goes out meanwhile: each asks the store first

    async def _release(self, key: str, held: _Held) -> None:
        """Save the state and let the lock go, both only while it is still this holder's."""
        fields = [part for pair in held.state.fields().items() for part in pair]
        args: list[str | int] = [held.value, held.token, STATE_DAYS * 86_400_000, *fields]
        try:
            saved = await self._connection.run(
                lambda client: self._save_and_release([held.lock, self._key(key)], args, client)
            )
        except StateUnavailable as exc:
            logger.warning("alert %s: its repeat counters were not saved and its lock expires by itself: %s", key, exc)
            return
        if not saved:
            logger.warning("alert %s: its lock expired before its repeat counters were saved; they were not", key)
