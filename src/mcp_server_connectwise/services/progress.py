"""How far a long call has got, told to the caller without the services knowing MCP.

A service counts its units of work as it finishes them; the tool runtime (`toolsets.runtime`) decides where
the count goes - to the client as `notifications/progress` when its request carried a progress token, nowhere
otherwise. Wiring a loop in is one line after each unit is done, sequential or in concurrent tasks alike:

    await progress.advance(len(page), what="tickets read")   # "tickets read: 2000"

and a concurrent batch is one line too, each task wrapped where it is created:

    group.create_task(progress.counted(write(device), total=len(devices), what="devices written"))

`total` is given when it is known (a batch of devices), left out when it is not (a page walk that stops at the
last page). Counts only grow - an amount of 0 is not reported - so every notification carries more than the
one before, as the protocol requires. Reporting never fails a
call: a notification that cannot be sent is dropped, and the ones after it too. A call the client cancels stops
where it awaits next - at the latest right after a report, before the next unit of work begins - and the
runtime audits it as cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

logger = logging.getLogger(__name__)

# Sends (progress so far, total if known, a message) to the caller: the SDK's `Context.report_progress`.
Reporter = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass
class _Call:
    send: Reporter | None
    done: float = 0


T = TypeVar("T")
_this_call: ContextVar[_Call | None] = ContextVar("progress_of_this_call", default=None)


@contextmanager
def reporting(send: Reporter) -> Iterator[None]:
    """Inside this block (and the tasks it starts), `advance` counts for one call and reports through `send`."""
    token = _this_call.set(_Call(send))
    try:
        yield
    finally:
        _this_call.reset(token)


async def advance(amount: float = 1, *, total: float | None = None, what: str) -> None:
    """Count `amount` more units done, of `total` if known, and tell the caller: "tickets read: 2000",
    "devices done: 3 of 200". Outside `reporting` (a service called directly), nothing happens."""
    call = _this_call.get()
    if call is None or call.send is None or amount <= 0:
        return
    call.done += amount
    message = f"{what}: {call.done:g}" + (f" of {total:g}" if total is not None else "")
    try:
        await call.send(call.done, total, message)
    except Exception:  # the client went away mid-call: the work goes on, unreported
        logger.debug("progress notification not sent; no more for this call", exc_info=True)
        call.send = None
    # A client that cancels on seeing the count (in memory, from within the send) is obeyed here, before the
    # next unit of work begins.
    await asyncio.sleep(0)


async def counted(work: Awaitable[T], *, total: float | None = None, what: str) -> T:
    """`work`, then one unit more done: for each task of a concurrent batch. Work that raises counts nothing."""
    result = await work
    await advance(total=total, what=what)
    return result
