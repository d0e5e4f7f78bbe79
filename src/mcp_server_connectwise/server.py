"""The MCP server: tenants, tools, audit and lifespan in `build_server`; `serve` and `demo` run it on a transport.

Over HTTP and SSE (`build_network_app`) every request needs a bearer token of a configured principal, Host and
Origin are checked, and request bodies are capped; a call runs as the token's principal, within its tenants.
Beside the MCP endpoint, POST /alerts takes monitoring alerts (bearer token) and POST /callbacks/{tenant}
ConnectWise's callbacks (signed by ConnectWise; `http_callbacks`), which become the events of the events
toolset and of the `connectwise://{tenant}/events` resource (`events_resource`).

Logging goes to stderr only: on stdio, stdout is the protocol wire.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx2
from mcp.server import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus
from starlette.applications import Starlette

from mcp_server_connectwise import __version__
from mcp_server_connectwise.audit import AuditLog
from mcp_server_connectwise.config import AppConfig, AuditConfig, ConfigError, EventsConfig, HttpConfig, Principal
from mcp_server_connectwise.connectwise import ApiCredentials
from mcp_server_connectwise.events_resource import add_events_resource
from mcp_server_connectwise.http_alerts import alerts_health, alerts_route
from mcp_server_connectwise.http_auth import (
    PrincipalTokenVerifier,
    auth_settings,
    hash_token,
    transport_security,
)
from mcp_server_connectwise.http_callbacks import CallbackReceiver, callbacks_health
from mcp_server_connectwise.http_ops import STATE_STORE_PROBE, ops_routes, state_store_probe
from mcp_server_connectwise.http_sessions import SessionLimits
from mcp_server_connectwise.metrics import Metrics, PrometheusMetrics
from mcp_server_connectwise.secrets import KeyStore
from mcp_server_connectwise.services.catalog import DEFAULT_TTL_SECONDS
from mcp_server_connectwise.services.tenancy import Tenants
from mcp_server_connectwise.state.events import EventLog
from mcp_server_connectwise.state.store import open_state
from mcp_server_connectwise.toolsets import REGISTRY
from mcp_server_connectwise.toolsets.definition import Offer
from mcp_server_connectwise.toolsets.runtime import (
    AuditRejectedCalls,
    ToolRuntime,
    check_tool_allowlists,
    sdk_tool,
    select_tools,
)

SERVER_NAME = "mcp-server-connectwise"
DEMO_TENANT = "demo"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listener:
    """Where a network transport listens. Its clients must present a bearer token of a configured principal."""

    transport: Literal["http", "sse"]
    host: str = "127.0.0.1"
    port: int = 8000
    # Streamable HTTP without sessions: any replica answers any request (no sticky sessions needed).
    stateless: bool = False

    def __post_init__(self) -> None:
        if self.stateless and self.transport != "http":
            raise ValueError("only streamable HTTP can be stateless")

    @property
    def path(self) -> str:
        return "/mcp" if self.transport == "http" else "/sse"

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.origin}{self.path}"


@dataclass
class AppState:
    """What the lifespan owns: the tenants' clients (closed when the last session ends), the audit file, the
    event log and, over HTTP and SSE, the callback receiver."""

    tenants: Tenants
    audit: AuditLog
    events: EventLog
    receiver: CallbackReceiver | None = None
    sessions: int = 0


def build_server(app_config: AppConfig, **options: Any) -> MCPServer:
    """The MCP server for the tenants of `app_config` (see `_build` for the options)."""
    return _build(app_config, **options)[0]


def _build(
    app_config: AppConfig,
    *,
    read_only: bool = False,
    toolsets: Collection[str] | None = None,
    default_tenant: str | None = None,
    principal: str = "local",
    listener: Listener | None = None,
    transports: Mapping[str, httpx2.AsyncBaseTransport] | None = None,
    credentials: Mapping[str, ApiCredentials] | None = None,
    key_store: KeyStore | None = None,
    cache_ttl: float = DEFAULT_TTL_SECONDS,
    metrics: Metrics | None = None,
    at_start: Callable[[Tenants], Coroutine[Any, Any, None]] | None = None,
    events: EventLog | None = None,
    notice: str | None = None,
) -> tuple[MCPServer, ToolRuntime, AppState]:
    """The MCP server for the tenants of `app_config`, the runtime its tools run in and the state its lifespan
    owns.

    `read_only` removes every write tool (it wins over `toolsets`, which selects toolsets by name - default:
    `[server] toolsets` of the config, else all - and over every tenant's `tools`). A tool is listed when some tenant can run it (its `tools`
    allowlist has it, and it is a read or the tenant is not read-only); another tenant refuses it by name.
    `principal` names the caller in the audit on stdio and in memory. With `listener`, every request needs a
    bearer token of a principal in `app_config.http` instead, and runs as that principal, within its tenants
    (serve it with `build_network_app`). `transports` and `credentials` (per tenant name) replace the network
    and the keyring, for the demo and tests; clients are otherwise made on first use from the config and
    `key_store`. `metrics` counts calls and requests (default: nothing is counted). `notice` is a sentence added
    to the server instructions. Config problems raise ConfigError.
    """
    where = f"{app_config.path}: " if app_config.path else ""
    check_tool_allowlists(app_config.tenants.values(), list(REGISTRY.by_name), where=where)
    auth: dict[str, Any] = {}
    if listener is not None:
        auth = dict(
            token_verifier=PrincipalTokenVerifier(app_config.http, config_path=app_config.path),
            auth=auth_settings(
                listener.host, listener.port, listener.path, allowed_origins=app_config.http.allowed_origins
            ),
        )
    state_store = open_state(app_config.state)
    events = events or state_store.event_log(app_config)
    tenants = Tenants(
        app_config,
        default_tenant=default_tenant,
        key_store=key_store,
        credentials=credentials,
        transports=transports,
        cache_ttl=cache_ttl,
        read_only=read_only,
        metrics=metrics,
        events=events,
        state=state_store,
    )
    audit = AuditLog(app_config.audit.path, max_bytes=app_config.audit.max_bytes)
    state = AppState(tenants=tenants, audit=audit, events=events)
    if listener is not None:
        state.receiver = CallbackReceiver(tenants, events, audit, app_config.http.max_request_body_bytes)

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[AppState]:
        # The SDK enters this once per process on stdio and HTTP, but once per connection in memory and on SSE.
        state.sessions += 1
        started: asyncio.Task[None] | None = None
        if state.sessions == 1:
            await state.events.start()
            if at_start is not None:  # in the background: start-up does not wait for it
                started = asyncio.create_task(at_start(tenants))
        try:
            yield state
        finally:
            if started is not None:
                started.cancel()
            state.sessions -= 1
            if state.sessions == 0:
                if state.receiver is not None:
                    await state.receiver.aclose()
                await state.events.aclose()
                await state.tenants.aclose()
                state.audit.close()

    try:
        offer = Offer.of(
            select_tools(REGISTRY, tenants, toolsets=toolsets if toolsets is not None else app_config.server.toolsets)
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None
    runtime = ToolRuntime(
        tenants, state.audit, None if listener else principal, offer, deadline=app_config.server.call_deadline_seconds
    )
    # The SDK sends logging to stderr (stdout is the stdio wire). httpx2's request lines would log search
    # conditions - customer names - at INFO, so they are kept to warnings.
    bus = InMemorySubscriptionBus()  # subscriptions/listen streams: told of new events below
    server = MCPServer(
        SERVER_NAME,
        version=__version__,
        instructions=" ".join(filter(None, (offer.instructions(REGISTRY), notice))),
        lifespan=lifespan,
        middleware=[AuditRejectedCalls(runtime)],
        tools=[sdk_tool(definition, runtime) for definition in offer.tools.values()],
        subscriptions=bus,
        **auth,
    )
    if (reads_events := offer.tools.get("get_ticket_events")) is not None:
        events.subscribe(add_events_resource(server, runtime, reads_events, bus).on_event)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    return server, runtime, state


def build_network_app(app_config: AppConfig, listener: Listener, **options: Any) -> Starlette:
    """The ASGI app serving `build_server(app_config, listener=listener, **options)` on `listener`.

    Bearer tokens are required (no [http.principals]: ConfigError); Host and Origin are checked, and a
    non-loopback bind needs [http] allowed_hosts and allowed_origins (else ConfigError); bodies are capped.
    Each principal may hold [http] max_sessions_per_principal MCP sessions, and a session without a client
    message for [http] session_idle_timeout_seconds is ended (`http_sessions.SessionLimits`); a stateless
    listener opens none. Beside them: POST /alerts, and GET /health, /ready and /metrics (`http_ops`). Run it
    with `http_guard.uvicorn_config` for the connection limits.
    """
    metrics = PrometheusMetrics()  # this server's own registry
    server, runtime, state = _build(app_config, listener=listener, metrics=metrics, **options)
    assert state.receiver is not None  # made for every listener
    http = app_config.http
    security = transport_security(listener.host, http, config_path=app_config.path)
    if listener.transport == "http":
        app = server.streamable_http_app(
            streamable_http_path=listener.path,
            host=listener.host,
            transport_security=security,
            max_request_body_size=http.max_request_body_bytes,
            session_idle_timeout=http.session_idle_timeout_seconds,
            stateless_http=listener.stateless,
        )
        sessions = server.session_manager
    else:
        app = server.sse_app(
            sse_path=listener.path,
            host=listener.host,
            transport_security=security,
            max_request_body_size=http.max_request_body_bytes,
        )
        sessions = None
    verifier = PrincipalTokenVerifier(http, config_path=app_config.path)
    # Outside the SDK's bearer auth, which guards the MCP endpoint's own route only.
    app.router.routes.insert(0, alerts_route(runtime, verifier, security, http.max_request_body_bytes))
    app.router.routes.insert(0, state.receiver.route())
    app.router.routes[0:0] = ops_routes(runtime, metrics, http.metrics_token_sha256)
    # What /ready asks of the state store: the embedded one is always there, a shared one may not be.
    setattr(app.state, STATE_STORE_PROBE, state_store_probe(runtime.tenants.state))
    app.add_middleware(
        SessionLimits,
        transport=listener.transport,
        path=listener.path,
        verifier=verifier,
        max_sessions=http.max_sessions_per_principal,
        idle_timeout=http.session_idle_timeout_seconds,
        sessions=sessions,
    )
    return app


# --- the demo: tenant 'demo' on the in-process sandbox -------------------------------------------------


def demo_events_path(audit_path: Path) -> Path:
    """The demo's event store: beside its audit log, named after it (a temporary audit log's is temporary too)."""
    return audit_path.with_name(f"{audit_path.stem}.events.sqlite3")


def _demo(audit_path: Path, http: HttpConfig | None = None) -> tuple[AppConfig, dict[str, Any]]:
    """The demo's config, and the build_server options answering tenant `demo` from a fresh in-process sandbox
    seeded relative to the current hour, so that "this week" and the SLA deadlines ahead mean what they say."""
    from mcp_server_connectwise.sandbox import SandboxSettings, create_app
    from mcp_server_connectwise.sandbox.settings import this_hour
    from mcp_server_connectwise.sandbox.tenant import sandbox_tenant

    sandbox = sandbox_tenant(DEMO_TENANT, create_app(SandboxSettings(now=this_hour())))
    config = AppConfig(
        default_tenant=DEMO_TENANT,
        audit=AuditConfig(path=audit_path),
        events=EventsConfig(path=demo_events_path(audit_path)),
        http=http or HttpConfig(),
        tenants={DEMO_TENANT: sandbox.config},
    )
    return config, dict(transports={DEMO_TENANT: sandbox.transport}, credentials={DEMO_TENANT: sandbox.credentials})


def build_demo_server(
    audit_path: Path, *, principal: str = "local", read_only: bool = False, notice: str | None = None
) -> MCPServer:
    """The server with one tenant, `demo`, answered by the in-process sandbox: no network, no keys. `notice`
    ends the server instructions (the bundle says there how to leave the demo)."""
    config, sandbox = _demo(audit_path)
    return build_server(config, principal=principal, read_only=read_only, notice=notice, **sandbox)


async def start_checks(tenants: Tenants) -> None:
    """What `serve` over HTTP checks and logs once it serves, in the background: each tenant's alert config
    against its ConnectWise, and which callbacks point at this server."""
    for failed in await asyncio.gather(alerts_health(tenants), callbacks_health(tenants), return_exceptions=True):
        if isinstance(failed, Exception):  # a check's own fault: the server serves on
            logger.error("a start-up check failed", exc_info=failed)


def build_demo_app(audit_path: Path, listener: Listener, token: str, *, read_only: bool = False) -> Starlette:
    """The demo over HTTP or SSE: like `serve`, it needs a bearer token, here `token` of principal `demo`. Once
    it listens, it registers its own receiver with the sandbox, which then calls it back on every ticket, note
    and time change - its own writes included, so that a note added through a tool arrives as an event."""
    from mcp_server_connectwise.services.callbacks import receiver_path, register_callback

    principal = Principal(name=DEMO_TENANT, token_sha256=hash_token(token), tenants=(DEMO_TENANT,))
    config, sandbox = _demo(audit_path, HttpConfig(principals={DEMO_TENANT: principal}))

    async def register_receiver(tenants: Tenants) -> None:
        session = await tenants.open_session(tenants.config.tenant(DEMO_TENANT))
        await register_callback(session, listener.origin + receiver_path(DEMO_TENANT), self_suppressed=False)
        await start_checks(tenants)

    return build_network_app(config, listener, read_only=read_only, at_start=register_receiver, **sandbox)
