"""Transports a test puts in front of a sandbox to watch the requests pass."""

from __future__ import annotations

import asyncio

import httpx2


class InFlight(httpx2.AsyncBaseTransport):
    """Wraps the sandbox transport to measure how many requests overlap."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner, self.now, self.most = inner, 0, 0

    async def handle_async_request(self, request):
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.01)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.now -= 1
