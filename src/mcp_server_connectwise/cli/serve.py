"""`serve`: the configured tenants over stdio (also the bare command), SSE or streamable HTTP."""

from __future__ import annotations

import argparse
import getpass
from typing import TYPE_CHECKING, Any

from mcp_server_connectwise.cli.arguments import add_config_option, add_transport_options

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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Config problems raise ConfigError."""
    import logging

    from mcp_server_connectwise.config import load_config
    from mcp_server_connectwise.secrets import KeyStore
    from mcp_server_connectwise.server import Listener, build_network_app, build_server

    logger = logging.getLogger(__name__)
    config = load_config(args.config)
    key_store = KeyStore.for_config(config)  # keys are read on first use; a plaintext keyring is named now
    key_store.warn_at_start()
    options: dict[str, Any] = dict(
        read_only=args.read_only, default_tenant=args.tenant, toolsets=args.toolsets, key_store=key_store
    )
    if args.transport == "stdio":
        server = build_server(config, principal=f"stdio:{os_user()}", **options)
        logger.info("serving %d tenant(s) over stdio; audit log %s", len(config.tenants), config.audit.path)
        server.run()
        return 0
    listener = Listener(args.transport, args.host, args.port)
    app = build_network_app(config, listener, **options)
    logger.info(
        "serving %d tenant(s) at %s to %d principal(s); audit log %s",
        len(config.tenants),
        listener.url,
        len(config.http.principals),
        config.audit.path,
    )
    listen(app, listener, config.http)
    return 0


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "unknown"


def listen(app: Starlette, listener: Listener, http: HttpConfig | None = None) -> None:
    """Serve `app` until interrupted, with the connection limits of `http` and the log kept bounded (see
    http_guard and log_limits)."""
    import anyio
    import uvicorn

    from mcp_server_connectwise.config import HttpConfig
    from mcp_server_connectwise.http_guard import uvicorn_config
    from mcp_server_connectwise.log_limits import install_log_limits

    http = http or HttpConfig()
    log_limits = install_log_limits(http)

    class Server(uvicorn.Server):
        async def shutdown(self, *args: Any, **kwargs: Any) -> None:
            await super().shutdown(*args, **kwargs)
            # uvicorn re-raises SIGTERM once it has shut down: say now what the log left out.
            log_limits.flush()

    try:
        anyio.run(Server(uvicorn_config(app, listener.host, listener.port, http)).serve)
    finally:
        log_limits.remove()
