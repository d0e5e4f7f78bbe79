"""What operators and load balancers ask a network server: `GET /health`, `GET /ready` and `GET /metrics`.

- `/health` (liveness): no token, no detail - `{"status": "ok"}` while the process serves requests, with a
  `warning` while its shared state store is known not to answer (the process lives on; `/ready` says more).
- `/ready` (readiness): no token; 200 `{"status": "ready", "checks": {...}}` when every tenant's API keys can be
  read, the audit log can be written and the state store answers, else 503 `{"status": "not ready", "checks":
  {...}}` with the failed checks named (no secret, no path: the log line says more).
- `/metrics`: Prometheus text format (see `metrics`), only with the bearer token whose SHA-256 is `[http]
  metrics_token_sha256` (`tokens metrics`): 401 without it, 404 when the key is not set.

The state store check is the `STATE_STORE_PROBE` attribute of the app's state (`app.state`): a coroutine
function answering what the store is ("embedded": in-process, always reachable) or raising
`StateStoreUnreachable`. `build_network_app` sets `embedded_state_store`; a shared store sets its own probe
there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from hmac import compare_digest

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_server_connectwise.audit import AuditUnavailable
from mcp_server_connectwise.config import METRICS_TOKEN_HINT
from mcp_server_connectwise.http_auth import hash_token
from mcp_server_connectwise.metrics import PrometheusMetrics
from mcp_server_connectwise.services.errors import ServiceError
from mcp_server_connectwise.state.store import EmbeddedState, StateStore
from mcp_server_connectwise.toolsets.runtime import ToolRuntime

logger = logging.getLogger(__name__)

HEALTH_PATH = "/health"
READY_PATH = "/ready"
METRICS_PATH = "/metrics"
STATE_STORE_PROBE = "state_store_probe"
# A probe answers quickly or the balancer gives up on it: a keyring that keeps a tenant's keys waiting this
# long makes the server not ready (the read goes on, and the next probe shares it).
_KEYS_WAIT_SECONDS = 2.0


class StateStoreUnreachable(Exception):
    """The shared state store cannot be reached; str() says why, without a secret (no URL with a password)."""


StateStoreProbe = Callable[[], Awaitable[str]]


async def embedded_state_store() -> str:
    """The in-process state store: always reachable."""
    return "embedded"


def state_store_probe(store: StateStore) -> StateStoreProbe:
    """The probe of `store` (embedded or shared): what it is, or StateStoreUnreachable saying why not."""

    kind = "embedded" if isinstance(store, EmbeddedState) else "shared"

    async def probe() -> str:
        check = await store.check()
        if not check.reachable:
            raise StateStoreUnreachable(check.detail)
        return kind

    return probe


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


STATE_STORE_WARNING = "the shared state store cannot be reached: reads go on, alert writes and callbacks are refused"


def _health(store: StateStore) -> Callable[[Request], Awaitable[Response]]:
    async def health(_request: Request) -> Response:
        # What the store's last use or check found: a liveness probe waits on nothing.
        if not store.status.reachable:
            return JSONResponse({"status": "ok", "warning": STATE_STORE_WARNING})
        return JSONResponse({"status": "ok"})

    return health


def _ready(runtime: ToolRuntime) -> Callable[[Request], Awaitable[Response]]:
    async def ready(request: Request) -> Response:
        checks: dict[str, str] = {}
        failed: dict[str, str] = {}  # check -> what the log says
        tenants = list(runtime.tenants.config.tenants.values())
        opened = await asyncio.gather(
            *(asyncio.wait_for(runtime.tenants.open_session(tenant), _KEYS_WAIT_SECONDS) for tenant in tenants),
            return_exceptions=True,
        )
        missing = []
        for tenant, outcome in zip(tenants, opened, strict=True):
            if isinstance(outcome, (ServiceError, TimeoutError)):
                missing.append(tenant.name)
                failed[f"tenant {tenant.name}"] = str(outcome) or "its API keys could not be read in time"
            elif isinstance(outcome, BaseException):
                raise outcome
        checks["tenants"] = "ok" if not missing else "no API keys for " + ", ".join(missing)
        try:
            runtime.audit.check_writable()
            checks["audit"] = "ok"
        except AuditUnavailable as exc:
            checks["audit"] = "not writable"
            failed["audit"] = str(exc)
        probe: StateStoreProbe = getattr(request.app.state, STATE_STORE_PROBE, embedded_state_store)
        try:
            checks["state"] = await probe()
        except StateStoreUnreachable as exc:
            checks["state"] = "unreachable"
            failed["state"] = str(exc)
        if failed:
            logger.warning("not ready: %s", "; ".join(f"{check}: {why}" for check, why in failed.items()))
            return JSONResponse({"status": "not ready", "checks": checks}, status_code=503)
        return JSONResponse({"status": "ready", "checks": checks})

    return ready


def _metrics(metrics: PrometheusMetrics, token_sha256: str | None) -> Callable[[Request], Awaitable[Response]]:
    async def serve_metrics(request: Request) -> Response:
        if token_sha256 is None:
            return _error(404, f"Metrics are off: create their token with {METRICS_TOKEN_HINT} and restart.")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = hash_token(token.strip()) if scheme.lower() == "bearer" and token.strip() else ""
        if not compare_digest(presented.encode("ascii"), token_sha256.encode("ascii")):
            return _error(
                401,
                "The metrics bearer token is required: Authorization: Bearer <token>.",
                **{"WWW-Authenticate": "Bearer"},
            )
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return serve_metrics


def ops_routes(runtime: ToolRuntime, metrics: PrometheusMetrics, metrics_token_sha256: str | None) -> list[Route]:
    """The routes of GET /health, /ready and /metrics."""
    return [
        Route(HEALTH_PATH, _health(runtime.tenants.state), methods=["GET"]),
        Route(READY_PATH, _ready(runtime), methods=["GET"]),
        Route(METRICS_PATH, _metrics(metrics, metrics_token_sha256), methods=["GET"]),
    ]
