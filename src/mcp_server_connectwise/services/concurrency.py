"""Running a call's requests side by side."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def all_or_none(*steps: Awaitable[Any]) -> list[Any]:
    """The results of `steps`, run concurrently, in order. Unlike asyncio.gather, the first failure cancels the
    others before it is raised (as itself), so no request of an answered call goes on spending the tenant's
    request budget."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
