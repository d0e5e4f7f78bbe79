"""POST /alerts: monitoring alerts over HTTP, for monitors and RMMs that call a webhook instead of an MCP tool.

The body is report_alert's arguments plus `tenant`, or a list of up to `MAX_ALERTS` of them. Each alert runs as
a report_alert call of the token's principal (its tenants, the audit, the deadline, write recovery), reports of
one alert in the order sent and different alerts side by side. The answer is 200 with one outcome per alert,
in the order sent; what no alert can be run for is a JSON error: 401 (no or an unknown token), 403 (the token
lacks the `alerts` permission), 404 (this server offers no alert intake), 413 (a body over the cap), 422 (not
JSON, or not alerts), 503 (the shared state store cannot be reached, so no alert is handled rather than risk a
duplicate ticket; also when it was lost during the request and no alert was handled).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from typing import Any

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_server_connectwise.http_auth import ALERTS_SCOPE, PrincipalTokenVerifier
from mcp_server_connectwise.services.alerts import alert_key, check_alerts_config
from mcp_server_connectwise.services.errors import ServiceError
from mcp_server_connectwise.services.tenancy import Tenants, Unchecked
from mcp_server_connectwise.toolsets.runtime import ToolRuntime

ALERTS_PATH = "/alerts"
TOOL = "report_alert"
MAX_ALERTS = 100
# Alerts of different keys handled at once; the tenant's request budget paces their requests anyway.
_CONCURRENT_ALERTS = 8
# How soon a monitor may send again alerts refused while the state store is unreachable (it is checked each second).
_STATE_RETRY_AFTER_SECONDS = 5


logger = logging.getLogger(__name__)


async def alerts_health(tenants: Tenants) -> None:
    """Log, per tenant that takes alerts, whether the names of its alert config exist in its ConnectWise (or
    else the first alert would be the first to find out), warming the catalogs alerts use."""
    taking = [tenant for tenant in tenants.config.tenants.values() if tenant.alerts is not None]
    for tenant, described in await tenants.each(check_alerts_config, taking):
        if isinstance(described, ServiceError):
            logger.warning("alerts of tenant %s cannot be handled: %s", tenant.name, described)
        elif isinstance(described, Unchecked):
            logger.warning("alert config of tenant %s unchecked: %s", tenant.name, described)
        else:
            logger.info("alerts of tenant %s: %s", tenant.name, described)


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


async def capped_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _state_unreachable(detail: str) -> JSONResponse:
    return _error(
        503,
        f"No alert was handled: the shared state store cannot be reached ({detail}), and without it two servers "
        "could open two tickets for one alert; send them again shortly.",
        **{"Retry-After": str(_STATE_RETRY_AFTER_SECONDS)},
    )


def alerts_route(
    runtime: ToolRuntime, verifier: PrincipalTokenVerifier, security: TransportSecuritySettings, max_body_bytes: int
) -> Route:
    """The route of POST /alerts, running report_alert through `runtime`, behind the same Host/Origin checks as
    /mcp (`security`)."""
    checks = TransportSecurityMiddleware(security)

    async def alerts(request: Request) -> Response:
        if (refused := await checks.validate_request(request, is_post=True)) is not None:
            return _error(refused.status_code, f"{bytes(refused.body).decode()}.")  # the SDK's words, as JSON
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        access = await verifier.verify_token(token.strip()) if scheme.lower() == "bearer" and token else None
        if access is None:
            return _error(
                401, "A bearer token is required: Authorization: Bearer <token>.", **{"WWW-Authenticate": "Bearer"}
            )
        if ALERTS_SCOPE not in access.scopes:
            return _error(
                403, f"Principal '{access.client_id}' may not report alerts: its token lacks the alerts permission."
            )
        definition = runtime.offer.tools.get(TOOL)
        if definition is None:
            return _error(404, "This server takes no alerts: it is read-only, or the alerts toolset is not served.")
        try:
            body = await capped_body(request, max_body_bytes)
        except ClientDisconnect:
            return Response(status_code=400)
        if body is None:
            return _error(413, f"The body is over {max_body_bytes:,} bytes; send fewer alerts per request.")
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError) as exc:  # not JSON, or JSON nested or numbered beyond reading
            return _error(
                422, f"The body is not JSON ({exc.__class__.__name__}); send an alert object or a list of them."
            )
        alerts_sent = parsed if isinstance(parsed, list) else [parsed]
        if not 1 <= len(alerts_sent) <= MAX_ALERTS or not all(isinstance(item, dict) for item in alerts_sent):
            return _error(422, f"The body must be an alert object or a list of 1 to {MAX_ALERTS} of them.")
        state = runtime.tenants.state
        if not state.status.reachable:
            return _state_unreachable(state.status.detail)
        model = definition.request_model
        accepted = {*(model.model_fields if model is not None else ()), "tenant"}
        results: list[dict[str, Any]] = [{} for _ in alerts_sent]

        async def run(index: int, alert: dict[str, Any]) -> None:
            unknown = [name for name in alert if name not in accepted]
            if not isinstance(alert.get("tenant", ""), str):  # the runtime would take it for the default tenant
                results[index] = {"index": index, "ok": False, "error": "tenant must be a tenant's name."}
                return
            try:
                answer = await runtime.run(definition, dict(alert), unknown=unknown)
            except ToolError as refused:
                results[index] = {"index": index, "ok": False, "error": str(refused)}
            except Exception:  # audited and logged by the runtime: the others still run
                results[index] = {"index": index, "ok": False, "error": "An internal error; see the server log."}
            else:
                outcome = {
                    key: value for key, value in (answer.structured_content or {}).items() if key != "next_steps"
                }
                results[index] = {"index": index, "ok": True, **outcome}  # next steps name MCP tools: not for a webhook

        # Reports of one alert keep their order (the second may be the first's clear); different alerts run
        # side by side, a few at a time.
        by_alert: dict[tuple, list[int]] = defaultdict(list)
        default_tenant = runtime.tenants.config.default_tenant
        for index, alert in enumerate(alerts_sent):
            tenant = alert.get("tenant") or default_tenant
            source, alert_id = (str(alert.get(key, "")).strip() for key in ("source", "alert_id"))
            by_alert[(tenant, alert_key(source, alert_id))].append(index)
        gate = asyncio.Semaphore(_CONCURRENT_ALERTS)

        async def run_in_order(indexes: list[int]) -> None:
            async with gate:
                for index in indexes:
                    await run(index, alerts_sent[index])

        user = auth_context_var.set(AuthenticatedUser(access))  # the runtime reads the caller from it
        try:
            async with asyncio.TaskGroup() as group:
                for indexes in by_alert.values():
                    group.create_task(run_in_order(indexes))
        finally:
            auth_context_var.reset(user)
        if not state.status.reachable and not any(result["ok"] for result in results):
            return _state_unreachable(state.status.detail)
        return JSONResponse({"results": results})

    return Route(ALERTS_PATH, alerts, methods=["POST"])
