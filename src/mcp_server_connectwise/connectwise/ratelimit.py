"""A client-side request budget, so a busy agent slows down instead of getting the whole tenant throttled.

A token bucket: requests leave at the budget's rate (`requests_per_minute / 60` a second) after a small burst,
instead of a window that a burst empties in seconds and that then stalls every caller for a minute. At most
`requests_per_minute + burst` requests start in any 60 seconds, well under ConnectWise's ~1,000/min at the
default of 600.

Waiting requests are served round-robin by caller (a principal's session, say), so one busy agent's hundred
queued requests delay another caller's one by a single turn, not by the whole queue. A request that would wait
longer than its caller can (its call's deadline) is refused at once with the wait it would have had.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Protocol

logger = logging.getLogger(__name__)

MAX_BURST = 10


def default_burst(requests_per_minute: int) -> int:
    """A second's worth of requests, between 1 and `MAX_BURST`."""
    return max(1, min(MAX_BURST, requests_per_minute // 60))


class BudgetWaitTooLong(Exception):
    """The request would have waited `wait` seconds for the budget, past what its caller allowed."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the request budget would make this request wait {wait:.1f} s")
        self.wait = wait


class Budget(Protocol):
    """What the client spends before each request: a `RateBudget` of this process, or one that several processes
    share (the state store's)."""

    requests_per_minute: int

    async def acquire(self, caller: Hashable = None, *, max_wait: float | None = None) -> float: ...


class RateBudget:
    def __init__(
        self,
        requests_per_minute: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if requests_per_minute < 1:
            raise ValueError("requests_per_minute must be at least 1")
        self.requests_per_minute = requests_per_minute
        self._rate = requests_per_minute / 60.0  # tokens a second
        self._capacity = float(burst if burst is not None else default_burst(requests_per_minute))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self._capacity
        self._updated = clock()
        # Waiters by caller; dict order is the round-robin order (a served caller moves to the back).
        self._queues: dict[Hashable, deque[asyncio.Future[None]]] = {}
        self._dispatcher: asyncio.Future[None] | None = None

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    def estimated_wait(self, caller: Hashable = None) -> float:
        """Seconds a request of `caller` arriving now would wait: the turns served before it, round-robin."""
        self._refill()
        mine = sum(not waiter.done() for waiter in self._queues.get(caller, ())) + 1
        ahead = (
            mine
            - 1
            + sum(
                min(mine, sum(not waiter.done() for waiter in queue))
                for key, queue in self._queues.items()
                if key != caller
            )
        )
        return max(0.0, (ahead + 1 - self._tokens) / self._rate)

    async def acquire(self, caller: Hashable = None, *, max_wait: float | None = None) -> float:
        """Wait for this request's turn and count it; the seconds waited. `BudgetWaitTooLong` at once when the
        wait would be longer than `max_wait`."""
        self._refill()
        if not self._waiting() and self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        wait = self.estimated_wait(caller)
        if max_wait is not None and wait > max_wait:
            raise BudgetWaitTooLong(wait)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(caller, deque()).append(waiter)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.ensure_future(self._dispatch())
        started = self._clock()
        logger.debug("request budget of %d/min spent; waiting about %.2f s", self.requests_per_minute, wait)
        await waiter  # cancelled with the call that waits: the dispatcher skips it
        return self._clock() - started

    def _waiting(self) -> bool:
        return any(not waiter.done() for queue in self._queues.values() for waiter in queue)

    async def _dispatch(self) -> None:
        while True:
            for caller in [key for key, queue in self._queues.items() if not any(not w.done() for w in queue)]:
                del self._queues[caller]
            if not self._queues:
                return
            self._refill()
            if self._tokens < 1:
                await self._sleep((1 - self._tokens) / self._rate)
                continue
            caller, queue = next(iter(self._queues.items()))
            del self._queues[caller]
            waiter = queue.popleft()
            if queue:
                self._queues[caller] = queue  # to the back of the round
            if not waiter.done():
                self._tokens -= 1
                waiter.set_result(None)
