"""The one console script, `mcp-server-connectwise`.

Subcommand handlers are imported lazily: `tenants list` must not pay for importing the MCP SDK, and the
stdio server's start-up is measured.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mcp_server_connectwise import __version__


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="tenants.toml to use (default: $CONNECTWISE_MCP_CONFIG, else the platform config dir)",
    )


def _add_http(p: argparse.ArgumentParser, default_port: int) -> None:
    p.add_argument("--transport", choices=["stdio", "sse", "http"], default="stdio",
                   help="stdio (default), sse (older clients) or http (streamable HTTP at /mcp)")
    p.add_argument("--host", default="127.0.0.1", help="bind address for sse/http (default 127.0.0.1; any other needs [http] allowed_hosts and allowed_origins)")
    p.add_argument("--port", type=int, default=default_port, help=f"port for sse/http (default {default_port})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-server-connectwise",
        description="MCP server for the ConnectWise PSA service desk. With no subcommand, serves MCP on stdio.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_config(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the configured tenants over MCP")
    _add_config(serve)
    _add_http(serve, 8000)
    serve.add_argument("--tenant", metavar="NAME", help="default tenant for calls that name none")
    serve.add_argument("--read-only", action="store_true", help="make every tenant read-only")

    demo = sub.add_parser("demo", help="serve one tenant 'demo' backed by the embedded sandbox (no keys needed)")
    _add_http(demo, 8000)
    demo.add_argument("--audit-path", metavar="PATH", help="audit log for the demo (default: a temp file)")

    sandbox = sub.add_parser("sandbox", help="run the ConnectWise sandbox on 127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8080)
    sandbox.add_argument("--seed", type=int, default=1, help="seed for the deterministic data (default 1)")
    sandbox.add_argument("--tickets", type=int, default=500, help="number of seeded tickets (default 500)")
    sandbox.add_argument("--company", default="sandbox", help="login company id (default sandbox)")
    sandbox.add_argument("--public-key", default="sandbox-public")
    sandbox.add_argument("--private-key", default="sandbox-private")
    sandbox.add_argument("--fault-rate", type=float, default=0.0,
                         help="fraction of requests answered 5xx or dropped (default 0)")
    sandbox.add_argument("--rate-limit", type=int, default=0, help="requests per minute before 429 (0: off)")
    sandbox.add_argument("--latency", type=float, default=0.0, metavar="MS", help="added latency per request")

    tenants = sub.add_parser("tenants", help="manage tenants' API keys in the OS keyring")
    _add_config(tenants)
    tsub = tenants.add_subparsers(dest="tenants_command", metavar="ACTION", required=True)
    set_keys = tsub.add_parser("set-keys", help="store a tenant's public and private API keys in the keyring")
    set_keys.add_argument("name")
    tsub.add_parser("list", help="list tenants and whether their keys are present (never the keys)")
    remove = tsub.add_parser("remove", help="delete a tenant's keys from the keyring")
    remove.add_argument("name")

    tokens = sub.add_parser("tokens", help="manage bearer tokens for the HTTP and SSE transports")
    _add_config(tokens)
    ksub = tokens.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    create = ksub.add_parser("create", help="create a principal's token: printed once, only its hash is stored")
    create.add_argument("name", help="the principal's name, as it will appear in the audit log")
    create.add_argument("--tenants", required=True, metavar="A,B", help="comma-separated tenants it may use")

    audit = sub.add_parser("audit", help="check the audit log")
    _add_config(audit)
    asub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = asub.add_parser("verify", help="verify the audit log's hash chain; report the first broken line")
    verify.add_argument("path", nargs="?", help="audit log to verify (default: the configured audit path)")

    bench = sub.add_parser("bench", help="run the benchmarks and print a report")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if getattr(args, "config", None) is None:
        args.config = None
    command = args.command or "serve"
    if args.command is None:  # the bare command is what a Claude Desktop config launches
        args.transport, args.host, args.port, args.tenant, args.read_only = "stdio", "127.0.0.1", 8000, None, False
    sys.exit(_dispatch(command, args))


def _dispatch(command: str, args: argparse.Namespace) -> int:
    from mcp_server_connectwise.config import ConfigError, UsageError
    from mcp_server_connectwise.secrets import KeyringUnavailable

    try:
        if command == "serve":
            from mcp_server_connectwise.server import run_serve

            return run_serve(args)
        if command == "demo":
            from mcp_server_connectwise.server import run_demo

            return run_demo(args)
        if command == "sandbox":
            from mcp_server_connectwise.sandbox.serve import run_sandbox

            return run_sandbox(args)
        if command == "tenants":
            from mcp_server_connectwise.tenant_admin import run_tenants

            return run_tenants(args)
        if command == "tokens":
            from mcp_server_connectwise.token_admin import run_tokens

            return run_tokens(args)
        if command == "audit":
            from mcp_server_connectwise.audit_admin import run_audit

            return run_audit(args)
        if command == "bench":
            from mcp_server_connectwise.bench import run_bench

            run_bench(args.quick)
            return 0
    except (ConfigError, KeyringUnavailable, UsageError) as exc:
        print(f"mcp-server-connectwise: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {command}")
