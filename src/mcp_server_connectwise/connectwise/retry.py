"""When to retry a ConnectWise request, decided in one place by a pure function.

Rules (API.md "Retry policy"):
- 429: ConnectWise refused the request and did nothing, so any method waits `Retry-After` (capped) and retries.
- The connection failed before the request was sent: nothing reached ConnectWise, so any method retries.
- 5xx, or a failure after sending (timeout, dropped connection): only idempotent requests are retried, with
  exponential backoff and full jitter. A POST is never re-sent then: its outcome is unknown.
- Any other 4xx is final.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4  # total attempts, the first one included
    base_delay: float = 0.5  # seconds; doubles per attempt, full jitter
    max_delay: float = 8.0
    max_retry_after: float = 60.0  # cap on an honoured Retry-After

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_retry_after) < 0:
            raise ValueError("retry delays cannot be negative")


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced, as far as retrying cares."""

    status: int | None = None  # HTTP status; None when no response came back
    retry_after: float | None = None  # seconds from a 429's Retry-After header
    sent: bool = True  # False when the connection failed before the request left


def backoff(policy: RetryPolicy, attempt: int, jitter: Callable[[], float] = random.random) -> float:
    """Full-jitter exponential backoff after failed attempt number `attempt` (1-based)."""
    ceiling = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
    return jitter() * ceiling


def decide(
    policy: RetryPolicy,
    attempt: int,
    outcome: Outcome,
    *,
    idempotent: bool,
    jitter: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before retrying after failed attempt number `attempt`, or None to give up."""
    if attempt >= policy.max_attempts:
        return None
    if outcome.status == 429:
        if outcome.retry_after is None:
            return backoff(policy, attempt, jitter)
        return min(outcome.retry_after, policy.max_retry_after)
    if outcome.status is None:
        if not outcome.sent or idempotent:
            return backoff(policy, attempt, jitter)
        return None
    if outcome.status >= 500 and idempotent:
        return backoff(policy, attempt, jitter)
    return None
