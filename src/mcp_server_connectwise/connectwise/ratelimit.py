"""A client-side request budget, so a busy agent slows down instead of getting the whole tenant throttled."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class RateBudget:
    """At most `requests_per_minute` requests start in any 60-second window; extra requests wait their turn.

    A sliding window (not a token bucket) because a full bucket plus a minute of refill would let through
    twice the budget in one window, over ConnectWise's ~1,000/min at the default of 600.
    """

    def __init__(
        self,
        requests_per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        window: float = 60.0,
    ) -> None:
        if requests_per_minute < 1:
            raise ValueError("requests_per_minute must be at least 1")
        self._limit = requests_per_minute
        self._window = window
        self._clock = clock
        self._sleep = sleep
        self._started: deque[float] = deque()
        # Waiters queue on the lock, so they are served in arrival order and never overshoot the budget.
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more request fits in the budget, and count it."""
        async with self._lock:
            while True:
                now = self._clock()
                while self._started and now - self._started[0] >= self._window:
                    self._started.popleft()
                if len(self._started) < self._limit:
                    self._started.append(now)
                    return
                wait = self._window - (now - self._started[0])
                logger.debug("request budget of %d/min spent; waiting %.2f s", self._limit, wait)
                await self._sleep(wait)
