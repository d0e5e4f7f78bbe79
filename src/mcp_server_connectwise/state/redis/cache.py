"""A tenant's catalog lists in Redis: ConnectWise's rows as JSON under the list's path, expiring with the TTL
the replica that fetched them gave them, so that every replica's copy ends at the same moment."""

from __future__ import annotations

import json
from typing import Any

from mcp_server_connectwise.state.redis.connection import RedisConnection


class RedisCache:
    def __init__(self, connection: RedisConnection, tenant: str) -> None:
        self._connection = connection
        self._tenant = tenant

    def _key(self, path: str) -> str:
        return self._connection.key(self._tenant, "catalog", path)

    async def get(self, path: str) -> tuple[list[dict[str, Any]], float] | None:
        if not self._connection.reachable:  # the watch says when it is back; until then, no waiting on it
            return None

        async def read(client: Any) -> list[Any]:
            async with client.pipeline(transaction=True) as pipe:
                return await pipe.get(self._key(path)).pttl(self._key(path)).execute()

        text, left = await self._connection.run(read, retry=True)
        if text is None or left <= 0:
            return None
        return json.loads(text), left / 1000

    async def put(self, path: str, rows: list[dict[str, Any]], ttl: float) -> None:
        if self._connection.reachable:
            text = json.dumps(rows, separators=(",", ":"))
            await self._connection.run(
                lambda client: client.set(self._key(path), text, px=max(1, int(ttl * 1000))), retry=True
            )
