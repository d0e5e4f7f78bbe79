"""Tenants: which ConnectWise company a call works for, its lazily created client and its caches.

A client is created on a tenant's first use, from the config and the keys in the OS keyring (or credentials
and transports injected by the demo and the tests), and lives until `aclose`. Its rate budget, its catalog's
shared layer and its alert locks come from the state store (`[state]`: this process, or a Redis that replicas
share). Every client reports its HTTP
attempts to `collect_requests`, so a tool call can list the requests it caused in its audit line, and to the
server's `Metrics`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2

from mcp_server_connectwise.config import AppConfig, ConfigError, TenantConfig
from mcp_server_connectwise.connectwise import (
    ApiCredentials,
    ClientSettings,
    ConnectWiseClient,
    ConnectWiseError,
    RequestRecord,
)
from mcp_server_connectwise.connectwise.scope import current as current_scope
from mcp_server_connectwise.metrics import Metrics
from mcp_server_connectwise.secrets import KeyringUnavailable, KeyStore
from mcp_server_connectwise.services.catalog import DEFAULT_TTL_SECONDS, Catalog
from mcp_server_connectwise.services.errors import Failed, Refused, ServiceError, explain, sentence
from mcp_server_connectwise.state.alerts import AlertKeys
from mcp_server_connectwise.state.events import EventLog
from mcp_server_connectwise.state.store import AlertLocks, StateStore, check_write, open_state

T = TypeVar("T")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unchecked:
    """A tenant's check that could not be made, and why (one sentence)."""

    sentence: str

    def __str__(self) -> str:
        return self.sentence


# A locked keyring can wait for a person to type a password; a call gives up on it after this long.
KEYRING_TIMEOUT_SECONDS = 10.0

_requests_of_this_call: ContextVar[list[RequestRecord] | None] = ContextVar("requests_of_this_call", default=None)


def _record_request(record: RequestRecord) -> None:
    records = _requests_of_this_call.get()
    if records is not None:
        records.append(record)


WriteAnnouncer = Callable[[str, str, Any], None]
_announce_write: ContextVar[WriteAnnouncer | None] = ContextVar("announce_write", default=None)


async def _before_write(method: str, path: str, body: Any) -> None:
    await check_write()  # first: a write the alert lock refuses is not announced either
    announce = _announce_write.get()
    if announce is not None:
        announce(method, path, body)


@contextmanager
def announcing_writes(announce: WriteAnnouncer) -> Iterator[None]:
    """Inside this block, `announce(method, path, body)` runs before each write is first sent (an audit intent
    line); if it raises, the write is not sent."""
    token = _announce_write.set(announce)
    try:
        yield
    finally:
        _announce_write.reset(token)


@contextmanager
def collect_requests() -> Iterator[list[RequestRecord]]:
    """Collect the ConnectWise requests made inside this block (and tasks it starts) into the yielded list."""
    records: list[RequestRecord] = []
    token = _requests_of_this_call.set(records)
    try:
        yield records
    finally:
        _requests_of_this_call.reset(token)


@dataclass
class TenantSession:
    """What a service function needs to work for one tenant."""

    config: TenantConfig
    client: ConnectWiseClient
    catalog: Catalog
    # Per kind of record ("note"), the ids of the records this session reported as created, oldest first:
    # write recovery never takes one of them for a later call's lost record.
    reported_ids: dict[str, dict[int, None]] = field(default_factory=dict)
    alert_keys: AlertLocks = field(default_factory=AlertKeys)  # report_alert's per-key locks and counters
    metrics: Metrics = field(default_factory=Metrics)  # the server's counts (none in memory and on stdio)
    events: EventLog | None = None  # the callbacks received, shared by every tenant (rows name theirs)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def member(self) -> str | None:
        """The member this call's time is logged for unless it names one: the caller's own ConnectWise member
        (a principal's `member`, whose writes act as it), else the tenant's configured `member`."""
        return current_scope().member or self.config.member


class Tenants:
    """The configured tenants and, once used, their clients and caches."""

    def __init__(
        self,
        config: AppConfig,
        *,
        default_tenant: str | None = None,
        key_store: KeyStore | None = None,
        credentials: Mapping[str, ApiCredentials] | None = None,
        transports: Mapping[str, httpx2.AsyncBaseTransport] | None = None,
        cache_ttl: float = DEFAULT_TTL_SECONDS,
        read_only: bool = False,
        state: StateStore | None = None,
        metrics: Metrics | None = None,
        events: EventLog | None = None,
    ) -> None:
        if default_tenant is not None:
            config.tenant(default_tenant)  # ConfigError at start-up rather than on every call
            config = config.model_copy(update={"default_tenant": default_tenant})
        self.config = config
        self.read_only = read_only
        self.state = state or open_state(config.state)
        self.events = events
        self._key_store = key_store or KeyStore()
        self._credentials = dict(credentials or {})
        self._transports = dict(transports or {})
        self._cache_ttl = cache_ttl
        self.metrics = metrics or Metrics()
        self._sessions: dict[str, TenantSession] = {}
        # The keyring read under way per tenant, which concurrent first calls share.
        self._keyring_reads: dict[str, asyncio.Future[ApiCredentials]] = {}

    def resolve(self, name: str | None) -> TenantConfig:
        """The named tenant, or the default one; an unknown name is refused naming the known tenants."""
        try:
            return self.config.tenant(name)
        except ConfigError as exc:
            raise Refused(f"{sentence(str(exc))}; pass one of them as tenant.") from None

    def is_read_only(self, tenant: TenantConfig) -> bool:
        return self.read_only or tenant.read_only

    def allows(self, tenant: TenantConfig, tool: str) -> bool:
        """Whether the tenant's `tools` allowlist (none: every tool) lets `tool` run for it."""
        return tenant.tools is None or tool in tenant.tools

    async def open_session(self, tenant: TenantConfig) -> TenantSession:
        """The tenant's session, creating its client on first use. The keyring is read in a worker thread: a
        keyring waiting for a password holds up this tenant's first calls only, and only for a while."""
        session = self._sessions.get(tenant.name)
        if session is None:
            credentials = self._credentials.get(tenant.name) or await self._read_keys(tenant)
            # A concurrent first call may have created it meanwhile; nothing awaits between look and create.
            session = self._sessions.get(tenant.name) or self._new_session(tenant, credentials)
        return session

    async def each(
        self, check: Callable[[TenantSession], Awaitable[T]], tenants: Iterable[TenantConfig] | None = None
    ) -> list[tuple[TenantConfig, T | ServiceError | Unchecked]]:
        """`check` on a session of each of `tenants` (default: all), concurrently, for start-up checks that log
        each tenant's outcome: what it returned, the sentence it refused or failed with (`ServiceError`), or
        why it could not be made (`Unchecked`: ConnectWise failed it, or the check itself did)."""

        async def one(tenant: TenantConfig) -> T | ServiceError | Unchecked:
            try:
                return await check(await self.open_session(tenant))
            except ServiceError as exc:
                return exc
            except ConnectWiseError as exc:
                return Unchecked(str(explain(exc, tenant.name)))
            except Exception as exc:  # a fault of the check's own: the other tenants' outcomes still count
                logger.error("a start-up check of tenant %s failed", tenant.name, exc_info=exc)
                return Unchecked(f"the check failed unexpectedly ({type(exc).__name__}; the log has more).")

        chosen = list(self.config.tenants.values() if tenants is None else tenants)
        return list(zip(chosen, await asyncio.gather(*(one(tenant) for tenant in chosen)), strict=True))

    async def _read_keys(self, tenant: TenantConfig) -> ApiCredentials:
        # One read per tenant at a time, shared by every call waiting: a locked keyring is not asked again by
        # each retry, and the threads stuck on it are not multiplied.
        read = self._keyring_reads.get(tenant.name)
        if read is None:
            read = self._keyring_reads[tenant.name] = asyncio.ensure_future(asyncio.to_thread(self._keys, tenant))
            read.add_done_callback(lambda done: self._keyring_read_done(tenant.name, done))
        try:
            return await asyncio.wait_for(asyncio.shield(read), KEYRING_TIMEOUT_SECONDS)
        except TimeoutError:
            raise Failed(
                f"The API keys of tenant {tenant.name} cannot be read: the OS keyring did not answer within "
                f"{KEYRING_TIMEOUT_SECONDS:g} s; unlock it and retry."
            ) from None

    def _keyring_read_done(self, tenant_name: str, read: asyncio.Future[ApiCredentials]) -> None:
        del self._keyring_reads[tenant_name]
        if not read.cancelled():
            read.exception()  # retrieved, so that a failed read every caller gave up on is not logged as unhandled

    def _keys(self, tenant: TenantConfig) -> ApiCredentials:
        try:
            credentials = self._key_store.get(tenant.name)
        except KeyringUnavailable as exc:
            raise Failed(f"The API keys of tenant {tenant.name} cannot be read: {exc}.") from None
        if credentials is None:
            raise Failed(
                f"Tenant {tenant.name} has no API keys in the keyring; "
                f"run `mcp-server-connectwise tenants set-keys {tenant.name}` and try again."
            )
        return credentials

    def _new_session(self, tenant: TenantConfig, credentials: ApiCredentials) -> TenantSession:
        settings = ClientSettings(
            company_id=tenant.company_id,
            client_id=tenant.client_id,
            base_url=tenant.base_url,
            site=tenant.site,
            api_version=tenant.api_version,
            requests_per_minute=tenant.requests_per_minute,
        )
        metrics = self.metrics

        def on_request(record: RequestRecord) -> None:
            _record_request(record)
            metrics.connectwise_request(tenant.name, record)

        client = ConnectWiseClient(
            settings,
            credentials,
            transport=self._transports.get(tenant.name),
            on_request=on_request,
            before_write=_before_write,
            budget=self.state.rate_budget(tenant.name, tenant.requests_per_minute),
        )
        catalog = Catalog(client, ttl=self._cache_ttl, shared=self.state.catalog_cache(tenant.name))
        session = self._sessions[tenant.name] = TenantSession(
            tenant, client, catalog, alert_keys=self.state.alert_locks(tenant.name), metrics=metrics, events=self.events
        )
        return session

    def transport(self, tenant: TenantConfig) -> httpx2.AsyncBaseTransport | None:
        """The transport injected for the tenant (the demo's and the tests' in-process sandbox), if any."""
        return self._transports.get(tenant.name)

    async def aclose(self) -> None:
        """Close every client and the state store's connections; a later call creates them afresh (this process's
        caches go with them)."""
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.client.aclose()
        await self.state.aclose()
