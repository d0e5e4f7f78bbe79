"""What the subcommands share: the program's name, the --config and transport options, and UsageError."""

from __future__ import annotations

import argparse

PROGRAM = "mcp-server-connectwise"


class UsageError(Exception):
    """A problem the user fixes by changing the command line: the CLI prints it as one line."""


def add_config_option(parser: argparse.ArgumentParser) -> None:
    # Suppressed default: given before or after the subcommand, the one given is kept (main fills in None).
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="tenants.toml to use (default: $CONNECTWISE_MCP_CONFIG, else the platform config dir)",
    )


def add_transport_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transport",
        choices=["stdio", "sse", "http"],
        default="stdio",
        help="stdio (default), sse (older clients) or http (streamable HTTP at /mcp)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address for sse/http (default 127.0.0.1; any other needs [http] allowed_hosts and allowed_origins)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port for sse/http (default 8000)")
