"""`demo`: the server over the embedded sandbox as tenant 'demo', announcing on stderr what it is and how to connect."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

from mcp_server_connectwise.cli.arguments import PROGRAM, add_transport_options
from mcp_server_connectwise.cli.serve import listen, os_user


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("demo", help="serve one tenant 'demo' backed by the embedded sandbox (no keys needed)")
    add_transport_options(parser)
    parser.add_argument("--audit-path", metavar="PATH", help="audit log for the demo (default: a temp file)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Over HTTP/SSE it binds loopback only and mints a bearer token, printed once on stdout (as `tokens create`
    does): there is no unauthenticated network mode, even for made-up data."""
    import tempfile

    from mcp_server_connectwise.connectwise.hosts import is_loopback_host
    from mcp_server_connectwise.http_auth import new_token
    from mcp_server_connectwise.server import Listener, build_demo_app, build_demo_server

    if args.transport != "stdio" and not is_loopback_host(args.host):
        print(
            f"{PROGRAM}: refusing to listen on {args.host}: the demo binds loopback only (127.0.0.1, ::1 or "
            "localhost); use `serve` with [http] allowed_hosts and allowed_origins to listen beyond this machine",
            file=sys.stderr,
        )
        return 2
    if args.audit_path:
        audit_path = Path(args.audit_path).expanduser().absolute()
    else:
        audit_path = Path(tempfile.mkstemp(prefix="connectwise-demo-audit-", suffix=".jsonl")[1])
    if args.transport == "stdio":
        server = build_demo_server(audit_path, principal=f"stdio:{os_user()}")
        print(banner(args, audit_path), file=sys.stderr, flush=True)
        server.run()
        return 0
    listener = Listener(args.transport, args.host, args.port)
    token = new_token()
    app = build_demo_app(audit_path, listener, token)
    print(banner(args, audit_path), file=sys.stderr, flush=True)
    print(token, flush=True)
    listen(app, listener)
    return 0


def _launch_command() -> list[str]:
    script = shutil.which(PROGRAM, path=str(Path(sys.executable).parent)) or shutil.which(PROGRAM)
    return [script] if script else [sys.executable, "-m", "mcp_server_connectwise"]


def banner(args: argparse.Namespace, audit_path: Path) -> str:
    command = _launch_command()
    lines = [
        f"{PROGRAM} demo: tenant 'demo' is the built-in ConnectWise SANDBOX (made-up data, in-process, "
        "no network, no keys); writes change only this process's copy.",
        f"Audit log: {audit_path}",
    ]
    if args.transport == "stdio":
        desktop = {"mcpServers": {"connectwise-demo": {"command": command[0], "args": [*command[1:], "demo"]}}}
        lines += [
            "Claude Desktop (claude_desktop_config.json):",
            json.dumps(desktop, indent=2),
            "MCP Inspector:",
            f"npx @modelcontextprotocol/inspector --cli --method tools/list -- {shlex.join([*command, 'demo'])}",
        ]
    else:
        from mcp_server_connectwise.server import Listener

        url = Listener(args.transport, args.host, args.port).url
        lines += [
            f"Listening at {url}; every request needs the bearer token printed on stdout: "
            "send `Authorization: Bearer TOKEN`.",
            f"MCP Inspector: npx @modelcontextprotocol/inspector --cli {url} --method tools/list "
            '--header "Authorization: Bearer TOKEN"',
        ]
    return "\n".join(lines)
