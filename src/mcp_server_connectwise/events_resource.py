"""The resource `connectwise://{tenant}/events` (a tenant's latest events) and the notification its subscribers
get when a new event arrives, on both protocol eras:

- 2026-07-28 clients listen with `subscriptions/listen`; events reach them through the SDK's subscription bus
  (`bus`, given to the MCPServer);
- earlier clients send `resources/subscribe`, which the SDK leaves to the server: `EventNotifications` keeps
  one session per connection and URI (the SDK's connections are not to be had, only a request's session on
  one), drops it when a notification cannot be sent to it, and keeps at most MAX_SUBSCRIPTIONS.

A read runs as a get_ticket_events call without arguments (`ToolRuntime.run`): the caller's tenants, the
tenant's allowlist and the audit apply as they do to the tool. Notifications are level triggers ("read
again"), coalesced per tenant, and sent after the callback that caused them has been answered.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from typing import Any

from mcp import MCPError
from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp.shared.uri_template import UriTemplate
from mcp_types import INVALID_PARAMS, EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from mcp_server_connectwise.toolsets.definition import ToolDefinition
from mcp_server_connectwise.toolsets.runtime import ToolRuntime

logger = logging.getLogger(__name__)

EVENTS_URI = "connectwise://{tenant}/events"
MAX_SUBSCRIPTIONS = 1024  # handshake-era ones; the oldest goes first (the SDK's listen streams have the same cap)
_TEMPLATE = UriTemplate.parse(EVENTS_URI)


def events_uri(tenant: str) -> str:
    return EVENTS_URI.format(tenant=tenant)


class EventNotifications:
    """Tells the subscribers of `connectwise://T/events` that tenant T has a new event (`on_event`, an
    EventLog listener)."""

    def __init__(self, runtime: ToolRuntime, bus: InMemorySubscriptionBus) -> None:
        self.runtime = runtime
        self.bus = bus
        # (URI, the connection's handshake: the same object for each of its requests) -> a session of it
        self._sessions: OrderedDict[tuple[str, int], ServerSession] = OrderedDict()
        self._pending: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def on_event(self, tenant: str) -> None:
        if tenant in self._pending:
            return  # a notification is on its way already: subscribers read everything new when it comes
        try:
            task = asyncio.get_running_loop().create_task(self._notify(tenant))
        except RuntimeError:  # no event loop: nobody can be subscribed here
            return
        self._pending.add(tenant)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, tenant: str) -> None:
        self._pending.discard(tenant)
        uri = events_uri(tenant)
        await self.bus.publish(ResourceUpdated(uri=uri))
        for key, session in [(key, session) for key, session in self._sessions.items() if key[0] == uri]:
            try:
                await session.send_resource_updated(uri)
            except Exception:  # a connection that went away: it is no longer subscribed
                self._sessions.pop(key, None)

    def _permitted_uri(self, uri: str) -> str:
        match = _TEMPLATE.match(uri)
        tenant = match.get("tenant") if match else None
        caller = self.runtime.caller()
        if (
            not isinstance(tenant, str)
            or tenant not in self.runtime.tenants.config.tenants
            or (caller.tenants is not None and tenant not in caller.tenants)
        ):
            raise MCPError(code=INVALID_PARAMS, message=f"No events resource {uri[:100]!r} for this caller.")
        return uri

    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        key = (self._permitted_uri(str(params.uri)), id(ctx.session.client_params))
        self._sessions.pop(key, None)
        self._sessions[key] = ctx.session
        while len(self._sessions) > MAX_SUBSCRIPTIONS:
            self._sessions.popitem(last=False)
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        self._sessions.pop((str(params.uri), id(ctx.session.client_params)), None)
        return EmptyResult()


def add_events_resource(
    server: MCPServer, runtime: ToolRuntime, definition: ToolDefinition, bus: InMemorySubscriptionBus
) -> EventNotifications:
    """Serve the resource on `server` (whose subscription bus is `bus`), reading through `definition`
    (get_ticket_events); returns what to tell of new events."""

    async def events(tenant: str) -> str:
        try:
            result = await runtime.run(definition, {"tenant": tenant})
        except ToolError as refused:
            raise ResourceError(str(refused)) from None
        return json.dumps(result.structured_content, separators=(",", ":"), ensure_ascii=False)

    server.resource(
        EVENTS_URI,
        name="ticket events",
        description="The tenant's latest ConnectWise events (as get_ticket_events without arguments); subscribe "
        "to be told of new ones.",
        mime_type="application/json",
    )(events)
    notifications = EventNotifications(runtime, bus)
    # resources/subscribe is a request of the handshake-era protocol that MCPServer does not serve itself;
    # the SDK's way to serve such a method is the low-level server's handler table.
    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, notifications.subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, notifications.unsubscribe)
    return notifications
