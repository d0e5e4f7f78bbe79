"""This process's connection to the Redis of `[state] url`, and what it knows of that Redis's health.

Every use goes through `RedisConnection.run`. A Redis that does not answer (refused, timed out, wrong password,
read-only) marks the store unreachable - one warning in the log, and `status` says so for `/ready` - and the use
raises `StateUnavailable`; what can go on without the store (the rate budget, the caches) then keeps to this
process without asking it, while alert writes keep asking and are refused. A watch pings the store (every
second while it is unreachable, so that it is back within a second of Redis; every few seconds otherwise, as
this replica's heartbeat); the first answer marks it reachable again.

The heartbeat also counts the replicas that use the store: a replica cut off from it spends its share of each
tenant's budget, not the whole of it.

Keys are `{prefix}:{tenant}:...`: the braces make every key of a tenant one Redis Cluster hash slot, which the
scripts need (one Redis, or a primary with replicas, is what this is tested against).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry

from mcp_server_connectwise.config import StateConfig
from mcp_server_connectwise.config.models import STATE_URL_ENV
from mcp_server_connectwise.state.errors import StateUnavailable
from mcp_server_connectwise.state.store import StateCheck

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A Redis on the same network answers in well under a millisecond: one that takes a second is not answering.
TIMEOUT_SECONDS = 1.0
# Connections per process: commands are short, and a waiting one queues for a free connection.
MAX_CONNECTIONS = 32
CHECK_SECONDS_WHILE_UNREACHABLE = 1.0
HEARTBEAT_SECONDS = 5.0
# A replica whose heartbeat is older than this no longer counts.
REPLICA_SECONDS = 3 * HEARTBEAT_SECONDS
# What a store that does not answer raises: the network, the server, its password, a read-only replica.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)

_HEARTBEAT = """
local now = redis.call('TIME')
local seconds = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZADD', KEYS[1], seconds, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', seconds - tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 2))
return redis.call('ZCARD', KEYS[1])
"""


def problem(exc: BaseException) -> str:
    """A Redis error in a few words on one line (its text names hosts and ports, never a password)."""
    text = " ".join(str(exc).split())[:200].rstrip(".")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# What every client of the store's Redis is made with: short timeouts, and (with `retry`) no retries of its own:
# a store that does not answer is said so at once, and the caller decides what goes on without it.
CLIENT_OPTIONS: dict[str, Any] = dict(
    socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS, decode_responses=True
)


class RedisConnection:
    """The Redis of `config`, for this process: its pool, its scripts and its reachability."""

    def __init__(self, config: StateConfig) -> None:
        assert config.url is not None
        self.shown = config.shown_url
        self.prefix = config.prefix
        self.replica = secrets.token_hex(6)  # this process among those that share the store
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            config.url, max_connections=MAX_CONNECTIONS, timeout=None, retry=Retry(NoBackoff(), 0), **CLIENT_OPTIONS
        )
        self._redis = redis.asyncio.Redis.from_pool(pool)
        self._reachable = True
        self._since = datetime.now(timezone.utc)
        self._problem: str | None = None
        self._watch: asyncio.Task[None] | None = None
        self._lost_now: asyncio.Event | None = None  # wakes the watch
        self._heartbeat = self.script(_HEARTBEAT)
        self.replicas = 1  # replicas whose heartbeat is recent, this one included

    def key(self, tenant: str, *parts: str) -> str:
        return ":".join((self.prefix, f"{{{tenant}}}", *parts))

    def script(self, source: str) -> AsyncScript:
        """A Lua script, sent by its SHA-1 (and loaded again when a restarted Redis has forgotten it)."""
        return self._redis.register_script(source)

    def pubsub(self) -> redis.asyncio.client.PubSub:
        """A subscription of this process (it holds one of the pool's connections until closed)."""
        return self._redis.pubsub()

    @property
    def reachable(self) -> bool:
        return self._reachable

    @property
    def status(self) -> StateCheck:
        since = self._since.strftime("%Y-%m-%d %H:%M:%S UTC")
        if self._reachable:
            return StateCheck(True, f"{self.shown}: reachable")
        return StateCheck(False, f"{self.shown}: unreachable since {since} ({self._problem})")

    def unavailable(self) -> StateUnavailable:
        return StateUnavailable(f"the shared state store at {self.shown} cannot be reached ({self._problem})")

    async def run(self, use: Callable[[redis.asyncio.Redis], Awaitable[T]], *, retry: bool = False) -> T:
        """`use(redis)`, or `StateUnavailable` when the store does not answer (and it is marked unreachable).
        With `retry` (for a use that may run twice: a read, a put), a use whose connection was lost is tried once
        more on a new one."""
        self._start_watch()
        try:
            try:
                result = await use(self._redis)
            except RedisConnectionError:
                # The pool's idle connections outlive a restart of Redis, and each fails on its first use.
                await self._drop_idle_connections()
                if not retry or cancelling():
                    raise
                result = await use(self._redis)
        except UNREACHABLE as exc:
            if cancelling():  # the client cut the use off because we are cancelled: that is no lost store
                raise asyncio.CancelledError from None
            self._lost(exc)
            raise self.unavailable() from None
        if not self._reachable:
            await self._drop_idle_connections()  # those from before the store was lost
            self._back()
        return result

    async def _drop_idle_connections(self) -> None:
        await self._redis.connection_pool.disconnect(inuse_connections=False)

    async def check(self) -> StateCheck:
        """Reach the store now (as the heartbeat does: it also counts the replicas)."""
        try:
            self.replicas = max(1, int(await self.run(self._beat, retry=True)))
        except StateUnavailable:
            pass
        return self.status

    def _lost(self, exc: BaseException) -> None:
        self._problem = problem(exc)
        if self._reachable:
            self._reachable, self._since = False, datetime.now(timezone.utc)
            if self._lost_now is not None:
                self._lost_now.set()
            logger.warning(
                "the shared state store at %s cannot be reached (%s): rate budgets and caches keep to this "
                "process, alert writes are refused until it answers again",
                self.shown,
                self._problem,
            )

    def _back(self) -> None:
        if not self._reachable:
            self._reachable, self._since = True, datetime.now(timezone.utc)
            logger.warning("the shared state store at %s answers again", self.shown)

    def _start_watch(self) -> None:
        if self._watch is None or self._watch.done():
            self._lost_now = asyncio.Event()
            self._watch = asyncio.get_running_loop().create_task(self._watching(self._lost_now))

    async def _watching(self, lost_now: asyncio.Event) -> None:
        while True:
            await self.check()
            lost_now.clear()
            pause = HEARTBEAT_SECONDS if self._reachable else CHECK_SECONDS_WHILE_UNREACHABLE
            try:  # a use that finds the store gone cuts a heartbeat's pause short: from now on, every second
                await asyncio.wait_for(lost_now.wait(), pause)
            except TimeoutError:
                pass

    async def _beat(self, client: redis.asyncio.Redis) -> Any:
        return await self._heartbeat(
            keys=[f"{self.prefix}:replicas"], args=[self.replica, REPLICA_SECONDS], client=client
        )

    async def aclose(self) -> None:
        """Stop the watch, leave the replica count and close the connections (a later use opens them again)."""
        watch = self._watch
        if watch is not None:
            # Still ours while it ends: a use it makes meanwhile starts no other watch. One mid-use ends within
            # the use's timeout; it is not waited for longer.
            watch.cancel()
            await asyncio.wait({watch}, timeout=2 * TIMEOUT_SECONDS)
            self._watch = None
            if self._reachable:
                try:
                    await asyncio.wait_for(self._redis.zrem(f"{self.prefix}:replicas", self.replica), TIMEOUT_SECONDS)
                except (TimeoutError, *UNREACHABLE):
                    pass
        await self._redis.connection_pool.disconnect()


def cancelling() -> bool:
    """Whether the running task is being cancelled (a client may turn that into a connection error)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def check_reachable_now(config: StateConfig) -> None:
    """Ping the store once, synchronously (before the server starts): `StateUnavailable` in one line if it does
    not answer."""
    import redis as sync_redis

    assert config.url is not None
    try:
        client = sync_redis.Redis.from_url(config.url, retry=SyncRetry(NoBackoff(), 0), **CLIENT_OPTIONS)
    except (ValueError, TypeError) as exc:  # an option in the URL's query that Redis's client does not take
        raise StateUnavailable(f"[state] url {config.shown_url} cannot be used ({problem(exc)})") from None
    try:
        client.ping()
        for warning in keeping_warnings(client):
            logger.warning("the shared state store at %s %s", config.shown_url, warning)
    except UNREACHABLE as exc:
        raise StateUnavailable(
            f"the shared state store at {config.shown_url} ([state] url) does not answer ({problem(exc)}): start "
            f"Redis or correct the url (or ${STATE_URL_ENV}), then start the server again"
        ) from None
    finally:
        client.close()


def keeping_warnings(client: Any) -> list[str]:
    """What in the store's settings can lose what replicas rely on (MessageIds, locks, cursors), as it says them:
    evicting keys under memory pressure, or keeping nothing across a restart. A Redis that does not tell (a
    managed one may refuse INFO) is not warned of."""
    warnings = []
    try:
        memory = client.info("memory")
    except ResponseError:
        memory = {}
    policy = memory.get("maxmemory_policy", "noeviction")
    if policy != "noeviction" and memory.get("maxmemory", 0):  # without a memory limit nothing is evicted
        warnings.append(
            f"evicts keys when full (maxmemory-policy {policy}): a forgotten MessageId or alert lock can make a "
            "second event or ticket; set maxmemory-policy noeviction"
        )
    try:
        kept = client.config_get("appendonly").get("appendonly") == "yes" or bool(client.config_get("save").get("save"))
    except ResponseError:  # CONFIG refused (managed Redis): its persistence is the provider's
        kept = True
    if not kept:
        warnings.append(
            "keeps nothing across a restart (no appendonly, no save): event cursors would start again at 1; set "
            "appendonly yes"
        )
    return warnings
