"""A slow client, as a hostile tester runs hundreds of them: it sends a request head, then a byte a second."""

from __future__ import annotations

import asyncio
import time


async def slow_client(port: int, head: bytes, timeout: float) -> float:
    """Send `head` to 127.0.0.1:`port`, then a byte a second, until the server closes the connection: how long
    it was open (inf if it still was after `timeout` seconds)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(head)
        while time.monotonic() - started < timeout:
            try:
                if await asyncio.wait_for(reader.read(1024), 1.0) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                pass
            except OSError:  # reset
                return time.monotonic() - started
            try:
                writer.write(b"a")
                await writer.drain()
            except OSError:
                return time.monotonic() - started
        return float("inf")
    finally:
        writer.close()
