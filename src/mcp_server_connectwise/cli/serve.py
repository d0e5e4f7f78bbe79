"""`serve`: the configured tenants over stdio (also the bare command), SSE or streamable HTTP."""

from __future__ import annotations

import argparse
import getpass
from typing import TYPE_CHECKING, Any

from mcp_server_connectwise.cli.arguments import UsageError, add_config_option, add_transport_options

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from mcp_server_connectwise.config import HttpConfig
    from mcp_server_connectwise.server import Listener


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="serve the configured tenants over MCP")
    add_config_option(parser)
    add_transport_options(parser)
    parser.add_argument("--tenant", metavar="NAME", help="default tenant for calls that name none")
    parser.add_argument("--read-only", action="store_true", help="make every tenant read-only")
    parser.add_argument(
        "--toolsets",
        metavar="A,B",
        type=_names,
        help="serve only these toolsets, e.g. tickets,boards (default: [server] toolsets, else all)",
    )
    parser.add_argument(
        "--stateless",
        action="store_true",
        help="streamable HTTP without sessions, for replicas behind a load balancer without sticky sessions",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Config problems raise ConfigError."""
    import logging

    from mcp_server_connectwise.config import load_config
    from mcp_server_connectwise.secrets import KeyStore
    from mcp_server_connectwise.server import Listener, build_network_app, build_server
    from mcp_server_connectwise.shutdown import grace_seconds, run_stdio
    from mcp_server_connectwise.state.store import check_reachable

    logger = logging.getLogger(__name__)
    if args.stateless and args.transport != "http":
        raise UsageError("--stateless is for streamable HTTP: add --transport http")
    config = load_config(args.config)
    key_store = KeyStore.for_config(config)  # keys are read on first use; a plaintext keyring is named now
    key_store.warn_at_start()
    check_reachable(config.state)  # a shared state store that does not answer stops the start, in one line
    options: dict[str, Any] = dict(
        read_only=args.read_only, default_tenant=args.tenant, toolsets=args.toolsets, key_store=key_store
    )
    if args.transport == "stdio":
        server = build_server(config, principal=f"stdio:{os_user()}", **options)
        logger.info("serving %d tenant(s) over stdio; audit log %s", len(config.tenants), config.audit.path)
        run_stdio(server, grace=grace_seconds(config.server.call_deadline_seconds))
        return 0
    from mcp_server_connectwise.server import start_checks

    listener = Listener(args.transport, args.host, args.port, stateless=args.stateless)
    app = build_network_app(config, listener, at_start=start_checks, **options)
    logger.info(
        "serving %d tenant(s) at %s%s to %d principal(s); callbacks at %s/callbacks/TENANT; audit log %s; events in %s",
        len(config.tenants),
        listener.url,
        " (stateless)" if listener.stateless else "",
        len(config.http.principals),
        listener.origin,
        config.audit.path,
        f"Redis at {config.state.shown_url}" if config.state.url else config.events_path,
    )
    listen(app, listener, config.http, grace=grace_seconds(config.server.call_deadline_seconds))
    return 0


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "unknown"


def listen(app: Starlette, listener: Listener, http: HttpConfig | None = None, *, grace: float | None = None) -> None:
    """Serve `app` until interrupted, with the connection limits of `http` and the log kept bounded (see
    http_guard and log_limits). On SIGTERM or SIGINT uvicorn stops accepting connections and waits up to
    `grace` seconds (default: the default call deadline plus `shutdown.GRACE_MARGIN_SECONDS`) for the requests
    in flight to be answered; then the process exits 0 (see `shutdown`)."""
    import logging
    import math
    import socket

    import anyio
    import uvicorn

    from mcp_server_connectwise.config import HttpConfig
    from mcp_server_connectwise.config.models import DEFAULT_CALL_DEADLINE_SECONDS
    from mcp_server_connectwise.http_guard import uvicorn_config
    from mcp_server_connectwise.log_limits import install_log_limits
    from mcp_server_connectwise.shutdown import RequestsInFlight, end_event_streams, event_streams_held, grace_seconds

    logger = logging.getLogger(__name__)
    http = http or HttpConfig()
    wait = grace if grace is not None else grace_seconds(DEFAULT_CALL_DEADLINE_SECONDS)
    log_limits = install_log_limits(http)
    in_flight = RequestsInFlight(app)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # What uvicorn's shutdown does first - stop listening, close the idle connections, let the busy ones
            # finish their response - then wait for the requests in flight to be answered before the event
            # streams are ended (see shutdown.event_streams_held).
            for server in self.servers:
                server.close()
            for connection in list(self.server_state.connections):
                connection.shutdown()
            if in_flight.count:
                logger.info("finishing %d request(s) in flight (up to %g s) before exiting", in_flight.count, wait)
            if not await in_flight.settled(wait):
                logger.warning("%d request(s) still running after %g s: stopping them", in_flight.count, wait)
            end_event_streams()
            await super().shutdown(sockets)
            log_limits.flush()  # say now what the log left out
            # uvicorn would re-raise the signal once it has shut down, and die of it: the shutdown was graceful,
            # the requests in flight were answered, so the process exits 0 instead.
            self._captured_signals.clear()

    config = uvicorn_config(in_flight, listener.host, listener.port, http)
    config.timeout_graceful_shutdown = math.ceil(wait)  # the backstop: then uvicorn cancels what is left
    try:
        with event_streams_held():
            anyio.run(Server(config).serve)
    finally:
        log_limits.remove()
