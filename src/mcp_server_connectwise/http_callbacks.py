"""POST /callbacks/{tenant}: ConnectWise's callbacks, authenticated by their signature alone, stored as events.

ConnectWise cannot send this server's bearer token, so the route sits beside /mcp, outside the SDK's bearer
auth (as /alerts does), and trusts nothing but what ConnectWise signs: the delivery's `CompanyId` must be the
tenant's `company_id`, and `x-content-signature` must sign the raw body with the key its `Metadata.key_url`
answers - fetched only from the tenant's own ConnectWise host (`connectwise.callbacks`). Then the event is
stored (once per MessageId) and the answer given: well within ConnectWise's 5 s, since a key is fetched at most
once per URL (3 s at most) and kept. Telling subscribers and applying retention happen after the answer.

Answers, as JSON: 200 `{"ok": true, "cursor": N}` (`"duplicate": true` for a MessageId already stored); 400,
not a callback; 401, no or a wrong signature, a foreign CompanyId, or a key URL not to be used; 404, no such
tenant; 413, a body over [http] max_request_body_bytes; 503 with Retry-After, the signing key cannot be had
now or the event not stored (ConnectWise retries). Every refusal is audited (`AuditLog.callback`; at most
MAX_AUDITED_REFUSALS_PER_MINUTE a minute, the next line counting those left out) and logged on one line, never
with the body, a key or a traceback.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_server_connectwise.audit import AuditLog, AuditUnavailable
from mcp_server_connectwise.config import TenantConfig
from mcp_server_connectwise.config.models import APP_NAME
from mcp_server_connectwise.connectwise.callbacks import (
    SIGNATURE_HEADER,
    CallbackPayload,
    KeyHosts,
    KeyUnavailable,
    NotACallback,
    SigningKeys,
    parse_payload,
)
from mcp_server_connectwise.http_alerts import capped_body
from mcp_server_connectwise.services.callbacks import RECEIVER_PATH, list_callbacks, receiver_path
from mcp_server_connectwise.services.errors import ServiceError
from mcp_server_connectwise.services.events import event_of
from mcp_server_connectwise.services.tenancy import Tenants, Unchecked
from mcp_server_connectwise.state.events import EventLog, EventLogUnavailable

logger = logging.getLogger(__name__)

_SHOWN_TENANT_CHARS = 64  # of a tenant name in the URL, which may be anything
# Retention is offered to the event log at most this often (it has its own schedule; this spares a thread hop
# per callback).
_MAINTAIN_EVERY_SECONDS = 1.0
# Refusals audited per minute, at most: anyone can send refusals, and the audit log keeps every rotated file. The
# next line written counts those left out (`"left_out"`).
MAX_AUDITED_REFUSALS_PER_MINUTE = 60


class Refusal(Exception):
    """A callback not taken: the status to answer and why (one phrase, no body, no key)."""

    def __init__(self, status: int, reason: str, **headers: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers


class CallbackReceiver:
    """Verifies and stores the callbacks of the configured tenants; one per server."""

    def __init__(self, tenants: Tenants, events: EventLog, audit: AuditLog, max_body_bytes: int) -> None:
        self.tenants = tenants
        self.events = events
        self.audit = audit
        self.max_body_bytes = max_body_bytes
        self._keys: dict[str, SigningKeys] = {}
        self._maintained = 0.0
        self.clock = time.monotonic
        self._unstored: dict[str, int] = {}  # tenant -> callbacks answered 503 since its last stored event
        self._audited: deque[float] = deque()  # when the refusals of the last minute were audited
        self._left_out = 0  # refusals not audited since the last one that was

    def keys(self, tenant: TenantConfig) -> SigningKeys:
        """The tenant's signing keys (fetched over its injected transport, for the demo and the tests)."""
        keys = self._keys.get(tenant.name)
        if keys is None:
            hosts = KeyHosts.of_tenant(base_url=tenant.base_url, site=tenant.site, extra=tenant.callback_key_hosts)
            keys = self._keys[tenant.name] = SigningKeys(hosts, transport=self.tenants.transport(tenant))
        return keys

    def route(self) -> Route:
        return Route(RECEIVER_PATH, self.receive, methods=["POST"])

    async def receive(self, request: Request) -> Response:
        name = request.path_params["tenant"]
        size = 0
        payload: CallbackPayload | None = None
        try:
            tenant = self.tenants.config.tenants.get(name)
            if tenant is None:
                raise Refusal(404, "no tenant of this name is configured")
            try:
                body = await capped_body(request, self.max_body_bytes)
            except ClientDisconnect:
                return Response(status_code=400)
            if body is None:
                raise Refusal(413, f"the body is over {self.max_body_bytes:,} bytes")
            size = len(body)
            try:
                payload = parse_payload(body)
            except NotACallback as exc:
                raise Refusal(400, f"not a ConnectWise callback: {exc}") from None
            if payload.company_id.casefold() != tenant.company_id.casefold():
                raise Refusal(401, "the callback is for another ConnectWise company (CompanyId)")
            presented = request.headers.get(SIGNATURE_HEADER)
            if not presented:
                raise Refusal(401, f"the callback has no {SIGNATURE_HEADER} header")
            try:
                signed = await self.keys(tenant).verify(payload, body, presented)
            except KeyUnavailable as exc:
                if exc.temporary:
                    wait = str(max(1, math.ceil(exc.retry_after or 2)))
                    raise Refusal(503, f"the signing key cannot be had now: {exc}", **{"Retry-After": wait}) from None
                raise Refusal(401, f"the signing key cannot be used: {exc}") from None
            if not signed:
                raise Refusal(401, "the signature does not match the body")
            try:
                stored = await self.events.append(event_of(tenant.name, payload, datetime.now(timezone.utc)))
            except EventLogUnavailable as exc:  # a full disk, say: ConnectWise retries what is not 2xx
                self._unstored[tenant.name] = self._unstored.get(tenant.name, 0) + 1
                raise Refusal(503, f"the event could not be stored: {exc}", **{"Retry-After": "2"}) from None
            if (unstored := self._unstored.pop(tenant.name, 0)) > 0:
                # ConnectWise tries a delivery twice more within seconds, then never again.
                logger.warning(
                    "events of tenant %s are stored again; %d delivery attempt(s) were refused while the event store could "
                    "not be used, and those ConnectWise gave up on were never stored: read again the records "
                    "changed meanwhile",
                    tenant.name,
                    unstored,
                )
        except Refusal as refusal:
            self._refused(name, refusal, size, payload)
            return JSONResponse({"error": refusal.reason}, status_code=refusal.status, headers=refusal.headers or None)
        answer: dict[str, Any] = {"ok": True, "cursor": stored.cursor} if stored else {"ok": True, "duplicate": True}
        now = time.monotonic()
        if now - self._maintained < _MAINTAIN_EVERY_SECONDS:
            return JSONResponse(answer)
        self._maintained = now
        # What may take longer than the answer, after it: retention (subscribers are told by the log's listener).
        return JSONResponse(answer, background=BackgroundTask(self._maintain))

    async def _maintain(self) -> None:
        try:
            await self.events.maintain()
        except EventLogUnavailable as exc:
            logger.warning("event retention not applied: %s", exc)

    def _refused(self, name: str, refusal: Refusal, size: int, payload: CallbackPayload | None) -> None:
        shown = name[:_SHOWN_TENANT_CHARS]
        delivery = {"message_id": payload.message_id, "type": payload.type, "id": payload.id} if payload else {}
        # %r: the tenant comes from the URL, and must not break the log's lines (log_limits bounds their number).
        logger.warning("callback for tenant %r refused with %d: %s", shown, refusal.status, refusal.reason)
        now = self.clock()
        while self._audited and now - self._audited[0] >= 60:
            self._audited.popleft()
        if len(self._audited) >= MAX_AUDITED_REFUSALS_PER_MINUTE:
            self._left_out += 1
            return
        self._audited.append(now)
        left_out, self._left_out = self._left_out, 0
        try:
            self.audit.callback(
                tenant=shown,
                status=refusal.status,
                error=refusal.reason,
                size=size,
                delivery=delivery,
                left_out=left_out,
            )
        except AuditUnavailable as exc:
            logger.error("audit line for a refused callback of tenant %r not written: %s", shown, exc)

    async def aclose(self) -> None:
        keys, self._keys = self._keys, {}
        for tenant_keys in keys.values():
            await tenant_keys.aclose()


async def callbacks_health(tenants: Tenants) -> None:
    """Log, per tenant, which active callbacks of its ConnectWise point at this server's receiver (one request
    each), or why that cannot be read."""
    for tenant, entries in await tenants.each(list_callbacks):
        if isinstance(entries, (ServiceError, Unchecked)):
            logger.warning("callbacks of tenant %s unknown: %s", tenant.name, entries)
            continue
        path = receiver_path(tenant.name)
        ours = [
            entry
            for entry in entries
            if entry.url and not entry.inactive_flag and urlsplit(entry.url).path.rstrip("/").endswith(path)
        ]
        if ours:
            listed = "; ".join(f"{entry.url} ({entry.type}, level {entry.level}, id {entry.id})" for entry in ours)
            logger.info("callbacks of tenant %s: ConnectWise calls %s", tenant.name, listed)
        else:
            logger.warning(
                "callbacks of tenant %s: none active points at %s, so no events arrive; register one with "
                "`%s callbacks register %s --url https://PUBLIC_HOST%s`",
                tenant.name,
                path,
                APP_NAME,
                tenant.name,
                path,
            )
