"""`create_app`: a seeded ConnectWise sandbox as a Starlette app."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from mcp_server_connectwise.sandbox.callbacks import CallbackSender
from mcp_server_connectwise.sandbox.errors import ApiError
from mcp_server_connectwise.sandbox.faults import FaultInjector
from mcp_server_connectwise.sandbox.gate import RequestLog, SandboxGate
from mcp_server_connectwise.sandbox.routes import api_error, routes
from mcp_server_connectwise.sandbox.seed import seed_store
from mcp_server_connectwise.sandbox.settings import SANDBOX_BASE_URL, SandboxSettings
from mcp_server_connectwise.sandbox.store import Store
from mcp_server_connectwise.sandbox.writes import Writer


def create_app(settings: SandboxSettings | None = None, *, base_url: str = SANDBOX_BASE_URL) -> Starlette:
    """A sandbox seeded from `settings`. `base_url` is only used to write the `_info` hrefs in records.

    `app.state` holds `settings`, `store` (the records), `writer`, `faults` (FaultInjector: counters and
    `fail_next`), `request_log` (one dict per request, see gate.SandboxGate; it keeps the newest
    `settings.request_log_limit` at most) and `callbacks` (the CallbackSender: its signing key and deliveries)."""
    settings = settings or SandboxSettings()
    request_log = RequestLog(settings.request_log_limit)  # first: it checks the limit
    store = Store(base_url)
    seed_store(store, settings)
    faults = FaultInjector(settings)
    table = routes()
    segments = {segment for route in table for segment in route.path.split("/") if segment and "{" not in segment}
    app = Starlette(
        routes=table,
        middleware=[
            Middleware(
                SandboxGate,
                settings=settings,
                store=store,
                faults=faults,
                request_log=request_log,
                path_segments=segments,
            )
        ],
        exception_handlers={ApiError: api_error},
    )
    app.state.settings = settings
    app.state.store = store
    callbacks = CallbackSender(store, settings, base_url)
    app.state.writer = Writer(store, on_change=callbacks.changed)
    app.state.callbacks = callbacks
    app.state.faults = faults
    app.state.request_log = request_log
    return app
