"""POST /alerts: monitoring alerts over HTTP, for monitors and RMMs that call a webhook instead of an MCP tool.

The body is report_alert's arguments plus `tenant`, or a list of up to `MAX_ALERTS` of them. Each alert runs as
a report_alert call of the token's principal (its tenants, the audit, the deadline, write recovery), reports of
one alert in the order sent and different alerts side by side. The answer is 200 with one outcome per alert,
in the order sent; what no alert can be run for is a JSON error: 401 (no or an unknown token), 403 (the token
lacks the `alerts` permission), 404 (this server offers no alert intake), 413 (a body over the cap), 422 (not
JSON, or not alerts).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver.exceptions import ToolError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_server_connectwise.http_auth import ALERTS_SCOPE, PrincipalTokenVerifier
from mcp_server_connectwise.toolsets.runtime import ToolRuntime

ALERTS_PATH = "/alerts"
TOOL = "report_alert"
MAX_ALERTS = 100
# Alerts of different keys handled at once; the tenant's request budget paces their requests anyway.
_CONCURRENT_ALERTS = 8


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


def alerts_route(runtime: ToolRuntime, verifier: PrincipalTokenVerifier, max_body_bytes: int) -> Route:
    """The route of POST /alerts, running report_alert through `runtime`."""

    async def alerts(request: Request) -> Response:
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
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(
                422, f"The body is not JSON ({exc.__class__.__name__}); send an alert object or a list of them."
            )
        alerts_sent = parsed if isinstance(parsed, list) else [parsed]
        if not 1 <= len(alerts_sent) <= MAX_ALERTS or not all(isinstance(item, dict) for item in alerts_sent):
            return _error(422, f"The body must be an alert object or a list of 1 to {MAX_ALERTS} of them.")
        model = definition.request_model
        accepted = {*(model.model_fields if model is not None else ()), "tenant"}
        results: list[dict[str, Any]] = [{} for _ in alerts_sent]

        async def run(index: int, alert: dict[str, Any]) -> None:
            unknown = [name for name in alert if name not in accepted]
            try:
                answer = await runtime.run(definition, dict(alert), unknown=unknown)
            except ToolError as refused:
                results[index] = {"index": index, "ok": False, "error": str(refused)}
            except Exception:  # audited and logged by the runtime: the others still run
                results[index] = {"index": index, "ok": False, "error": "An internal error; see the server log."}
            else:
                results[index] = {"index": index, "ok": True, **(answer.structured_content or {})}

        # Reports of one alert keep their order (the second may be the first's clear); different alerts run
        # side by side, a few at a time.
        by_alert: dict[tuple, list[int]] = defaultdict(list)
        for index, alert in enumerate(alerts_sent):
            by_alert[(alert.get("tenant"), str(alert.get("source")), str(alert.get("alert_id")))].append(index)
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
        return JSONResponse({"results": results})

    return Route(ALERTS_PATH, alerts, methods=["POST"])
