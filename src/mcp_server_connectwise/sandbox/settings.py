"""The sandbox's switches and fixed identity (codebase, API root)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from mcp_server_connectwise.sandbox.store import epoch

CODEBASE = "v4_6_release/"
API_ROOT = "/" + CODEBASE + "apis/3.0"
SANDBOX_BASE_URL = "http://127.0.0.1" + API_ROOT
# The member the sandbox's API keys belong to: it is `updatedBy`, `enteredBy` and `closedBy` of every write.
API_MEMBER_IDENTIFIER = "api-bot"
# The moment a seed is dated relative to unless told otherwise: fixed, so that the same seed gives the same
# store in every run (tests, benchmarks).
SEED_NOW = epoch(2026, 11, 2, 17)


def this_hour() -> float:
    """The current time at the start of its hour: a seed dated from it has today's tickets, this week's SLA
    deadlines still ahead, and nothing later than the clock (the demo and the `sandbox` command)."""
    return float(int(time.time()) // 3600 * 3600)


@dataclass(frozen=True)
class SandboxSettings:
    seed: int = 1
    tickets: int = 500
    company: str = "sandbox"
    public_key: str = "sandbox-public"
    private_key: str = "sandbox-private"
    fault_rate: float = 0.0
    rate_limit: int = 0  # requests per minute; 0 is unlimited
    latency_ms: float = 0.0
    now: float = SEED_NOW  # epoch seconds every seeded date is relative to
    # The request log keeps at most this many entries (the oldest go first): a demo may run for hours.
    request_log_limit: int = 100_000
    # [I] How long impersonation keys (POST /system/members/{identifier}/tokens) act as their member.
    token_lifetime_seconds: float = 4 * 3600
    # A callback delivery not answered 2xx within this many seconds is retried after each of these delays.
    callback_timeout: float = 5.0
    callback_retry_delays: tuple[float, ...] = (2.0, 4.0)
