"""The scope of the call a request is made for: its deadline, who is asking, and as which member it writes.

Whoever calls the client (a tool call, a batch) opens a scope; every request made inside it, in any task it
starts, shares one deadline - budget waits, retries, `Retry-After` and the requests themselves all fit inside
it - and queues for the rate budget as that caller, so callers are served fairly. With a `member`, the scope's
writes are sent with that ConnectWise member's impersonation keys (see `ConnectWiseClient`), so ConnectWise's
own records name the person who asked rather than the API member.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class CallScope:
    deadline: float | None = None  # on `clock`; None: no deadline
    caller: Hashable = None
    clock: Callable[[], float] = time.monotonic
    member: str | None = None  # the ConnectWise member identifier writes act as; None: the API member

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - self.clock())


_NO_SCOPE = CallScope()
_scope: ContextVar[CallScope] = ContextVar("connectwise_call_scope", default=_NO_SCOPE)


def current() -> CallScope:
    return _scope.get()


@contextmanager
def call_scope(
    seconds: float | None,
    caller: Hashable = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    member: str | None = None,
) -> Iterator[CallScope]:
    """Requests made inside this block answer within `seconds` from now, queued as `caller`; writes act as
    `member` when given."""
    scope = CallScope(None if seconds is None else clock() + seconds, caller, clock, member)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)
