"""Fault injection for reliability work: 5xx answers, dropped connections, rate limiting and latency.

Random faults hit `fault_rate` of requests (seeded, so a run is repeatable) and are one of FAULT_MODES:
- "error_500" / "error_503": ConnectWise's error body; nothing was done.
- "drop_before": the connection drops after the request was read; nothing was done.
- "drop_after_commit": the request is carried out (a write IS saved) and then the connection drops before the
  response arrives: the "did my POST happen?" case a client must resolve by looking before re-sending.
Tests can also schedule exact faults with `fail_next(mode)`; those come first and ignore `fault_rate`.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, deque

import httpx2

from mcp_server_connectwise.sandbox.errors import ApiError
from mcp_server_connectwise.sandbox.settings import SandboxSettings

FAULT_MODES = ("error_500", "error_503", "drop_before", "drop_after_commit")
_WEIGHTS = (0.35, 0.15, 0.25, 0.25)
_WINDOW_SECONDS = 60.0


class DroppedConnection(httpx2.RemoteProtocolError):
    """Raised by the app to drop the connection.

    In process, `httpx2.ASGITransport` hands this to the client: the same transport error class a real dropped
    connection gives. Served by uvicorn, the response has already started, so uvicorn closes the connection
    mid-response and the client sees an incomplete message."""

    def __init__(self) -> None:
        super().__init__("Server disconnected without sending a complete response (sandbox fault injection).")


def server_error(status: int) -> ApiError:
    if status == 503:
        return ApiError(
            503, {"code": "ConnectWiseApi", "message": "The service is temporarily unavailable.", "errors": None}
        )
    return ApiError(
        500, {"code": "ConnectWiseApi", "message": "An error has occurred. (sandbox fault injection)", "errors": None}
    )


class FaultInjector:
    def __init__(self, settings: SandboxSettings) -> None:
        self.fault_rate = settings.fault_rate
        self.rate_limit = settings.rate_limit
        self.latency_ms = settings.latency_ms
        self.injected: Counter[str] = Counter()  # faults served so far, by mode (and "rate_limited")
        self._rng = random.Random(f"faults-{settings.seed}")
        self._scheduled: deque[str] = deque()
        self._recent: deque[float] = deque()

    def fail_next(self, mode: str, count: int = 1) -> None:
        """Serve fault `mode` on the next `count` requests, whatever `fault_rate` is."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {FAULT_MODES}")
        self._scheduled.extend([mode] * count)

    def pick(self) -> str | None:
        """The fault for this request, if any."""
        if self._scheduled:
            mode = self._scheduled.popleft()
        elif self.fault_rate > 0 and self._rng.random() < self.fault_rate:
            mode = self._rng.choices(FAULT_MODES, _WEIGHTS)[0]
        else:
            return None
        self.injected[mode] += 1
        return mode

    def retry_after(self) -> int | None:
        """Seconds to wait if this request is over `rate_limit` per minute (sliding window), else None."""
        if self.rate_limit <= 0:
            return None
        now = time.monotonic()
        recent = self._recent
        while recent and recent[0] <= now - _WINDOW_SECONDS:
            recent.popleft()
        if len(recent) >= self.rate_limit:
            self.injected["rate_limited"] += 1
            return max(1, math.ceil(recent[0] + _WINDOW_SECONDS - now))
        recent.append(now)
        return None


def rate_limited(seconds: int) -> ApiError:
    # ConnectWise's documented 429 body uses "error", not "code".
    return ApiError(
        429,
        {"error": "ConnectWiseAPI", "message": f"Too many requests. Please try again in {seconds} seconds."},
        {"Retry-After": str(seconds)},
    )
