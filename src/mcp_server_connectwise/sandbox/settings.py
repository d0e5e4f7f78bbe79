"""The sandbox's switches and fixed identity (codebase, API root)."""

from __future__ import annotations

from dataclasses import dataclass

CODEBASE = "v4_6_release/"
API_ROOT = "/" + CODEBASE + "apis/3.0"
SANDBOX_BASE_URL = "http://127.0.0.1" + API_ROOT
# The member the sandbox's API keys belong to: it is `updatedBy`, `enteredBy` and `closedBy` of every write.
API_MEMBER_IDENTIFIER = "api-bot"


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
    # The request log keeps at most this many entries (the oldest go first): a demo may run for hours.
    request_log_limit: int = 100_000
    # [I] How long impersonation keys (POST /system/members/{identifier}/tokens) act as their member.
    token_lifetime_seconds: float = 4 * 3600
    # A callback delivery not answered 2xx within this many seconds is retried after each of these delays.
    callback_timeout: float = 5.0
    callback_retry_delays: tuple[float, ...] = (2.0, 4.0)
