"""The one console script, `mcp-server-connectwise`: one module per subcommand, each adding its own parser and
handler (`add_parser`, `run`).

Handlers import what they need when they run: `tenants list` must not pay for importing the MCP SDK, and the
stdio server's start-up is measured. So the subcommand modules import only the standard library up front.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mcp_server_connectwise import __version__
from mcp_server_connectwise.cli import audit, bench, bundle, callbacks, config, demo, sandbox, serve, tenants, tokens
from mcp_server_connectwise.cli.arguments import PROGRAM, UsageError, add_config_option

# in the order --help lists them
SUBCOMMANDS = (serve, demo, config, bundle, sandbox, tenants, tokens, callbacks, audit, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="MCP server for the ConnectWise PSA service desk. With no subcommand, serves MCP on stdio.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_config_option(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for subcommand in SUBCOMMANDS:
        subcommand.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # the bare command is what a Claude Desktop config launches: serve on stdio
        args = parser.parse_args([*argv, "serve"])
    args.config = getattr(args, "config", None)
    sys.exit(_run(args))


def _run(args: argparse.Namespace) -> int:
    from mcp_server_connectwise.config import ConfigError
    from mcp_server_connectwise.secrets import KeyringUnavailable
    from mcp_server_connectwise.state.errors import StateUnavailable

    try:
        return args.run(args)
    except (ConfigError, KeyringUnavailable, UsageError) as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 2
    except StateUnavailable as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
