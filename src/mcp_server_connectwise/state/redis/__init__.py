"""The state store in Redis, for several replicas of the server (`[state] url`): one connection per process
(`connection`), and on it each tenant's rate budget (`budget`), alert locks (`alerts`) and catalog cache
(`cache`), and the event log (`events`). Another kind of shared state is one more class over the same
`RedisConnection`."""

from __future__ import annotations

from datetime import timedelta

from mcp_server_connectwise.config import AppConfig, StateConfig
from mcp_server_connectwise.connectwise.ratelimit import Budget
from mcp_server_connectwise.state.redis.alerts import RedisAlertKeys
from mcp_server_connectwise.state.redis.budget import SharedRateBudget
from mcp_server_connectwise.state.redis.cache import RedisCache
from mcp_server_connectwise.state.redis.connection import RedisConnection, check_reachable_now
from mcp_server_connectwise.state.redis.events import RedisEventLog
from mcp_server_connectwise.state.store import AlertLocks, SharedCache, StateCheck


class RedisState:
    def __init__(self, config: StateConfig) -> None:
        self.connection = RedisConnection(config)

    def rate_budget(self, tenant: str, requests_per_minute: int) -> Budget:
        return SharedRateBudget(self.connection, tenant, requests_per_minute)

    def alert_locks(self, tenant: str) -> AlertLocks:
        return RedisAlertKeys(self.connection, tenant)

    def catalog_cache(self, tenant: str) -> SharedCache | None:
        return RedisCache(self.connection, tenant)

    def event_log(self, config: AppConfig) -> RedisEventLog:
        return RedisEventLog(
            self.connection,
            config.tenants,
            retention=timedelta(days=config.events.retention_days),
            max_per_tenant=config.events.max_events_per_tenant,
        )

    async def check(self) -> StateCheck:
        return await self.connection.check()

    @property
    def status(self) -> StateCheck:
        return self.connection.status

    async def aclose(self) -> None:
        await self.connection.aclose()


__all__ = ["RedisState", "check_reachable_now"]
