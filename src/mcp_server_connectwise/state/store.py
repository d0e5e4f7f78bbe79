"""The state store: one interface for what server processes may share, and its embedded implementation.

A store hands each tenant its

- **rate budget** (`connectwise.ratelimit.Budget`): what the client spends before every request;
- **alert locks** (`AlertLocks`): report_alert's per-key lock with the key's repeat counters and flap history;
- **catalog cache** (`SharedCache`): the reference lists `services.catalog` keeps for their TTL;

and holds the **event log** of ConnectWise's callbacks (`state.events.EventLog`, one for all tenants),

and says whether it is reachable (`check`, what `/ready` reports). `EmbeddedState` keeps all of it in this
process: one server, nothing to install. `state.redis.RedisState` keeps it in one Redis for several replicas.

Writes made while an alert lock is held are checked against it just before each is sent (`check_write`, which
the tenant's client awaits): a store whose lock can expire (Redis) refuses the write of a holder that lost it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from mcp_server_connectwise.config import AppConfig, StateConfig
from mcp_server_connectwise.connectwise.ratelimit import Budget, RateBudget
from mcp_server_connectwise.state.alerts import AlertKeys, AlertKeyState
from mcp_server_connectwise.state.events import EventLog, event_log


@dataclass(frozen=True)
class StateCheck:
    """Whether the store can be used now, and in words what it is (and, when not, why)."""

    reachable: bool
    detail: str


class AlertLocks(Protocol):
    def locked(self, key: str) -> AbstractAsyncContextManager[AlertKeyState]:
        """The key's state, with the key's lock held for the block (reports of one alert take turns)."""
        ...


class SharedCache(Protocol):
    """Reference lists (ConnectWise's rows as read) under their path, kept for a TTL that every reader shares."""

    async def get(self, path: str) -> tuple[list[dict[str, Any]], float] | None:
        """The rows and the seconds they have left, or None when none are kept."""
        ...

    async def put(self, path: str, rows: list[dict[str, Any]], ttl: float) -> None: ...


class StateStore(Protocol):
    def rate_budget(self, tenant: str, requests_per_minute: int) -> Budget: ...

    def alert_locks(self, tenant: str) -> AlertLocks: ...

    def catalog_cache(self, tenant: str) -> SharedCache | None:
        """The shared layer under the tenant's catalog, or None when its own (in this process) is all there is."""
        ...

    def event_log(self, config: AppConfig) -> EventLog:
        """The event log of `config`'s `[events]`."""
        ...

    async def check(self) -> StateCheck:
        """Reach the store now (at most about a second) and say whether it answered."""
        ...

    @property
    def status(self) -> StateCheck:
        """What is known without asking: the outcome of the latest use or check."""
        ...

    async def aclose(self) -> None: ...


class EmbeddedState:
    """All state in this process, as a single server needs it: nothing to reach, nothing to lose but a restart."""

    def rate_budget(self, tenant: str, requests_per_minute: int) -> Budget:
        return RateBudget(requests_per_minute)

    def alert_locks(self, tenant: str) -> AlertLocks:
        return AlertKeys()

    def catalog_cache(self, tenant: str) -> SharedCache | None:
        return None

    def event_log(self, config: AppConfig) -> EventLog:
        return event_log(config)  # a SQLite file

    async def check(self) -> StateCheck:
        return self.status

    @property
    def status(self) -> StateCheck:
        return StateCheck(True, "embedded: in this process")

    async def aclose(self) -> None:
        return None


def open_state(config: StateConfig) -> StateStore:
    """The store `[state]` names: embedded without a url, else Redis (imported only then: a stdio server's
    start-up does not pay for it)."""
    if config.url is None:
        return EmbeddedState()
    from mcp_server_connectwise.state.redis import RedisState

    return RedisState(config)


def check_reachable(config: StateConfig) -> None:
    """At start-up: `StateUnavailable`, in one line, when `[state]` names a store that does not answer."""
    if config.url is not None:
        from mcp_server_connectwise.state.redis import check_reachable_now

        check_reachable_now(config)


# --- writes under a lock that can expire ------------------------------------------------------------------

WriteCheck = Callable[[], Awaitable[None]]
_write_check: ContextVar[WriteCheck | None] = ContextVar("write_check", default=None)


@contextmanager
def checking_writes(check: WriteCheck) -> Iterator[None]:
    """Inside this block, `check()` is awaited before each ConnectWise write is sent; if it raises, the write is
    not sent."""
    token = _write_check.set(check)
    try:
        yield
    finally:
        _write_check.reset(token)


async def check_write() -> None:
    """Raise (`LockLost`, `StateUnavailable`) if a write sent now could break the lock it is made under."""
    check = _write_check.get()
    if check is not None:
        await check()
