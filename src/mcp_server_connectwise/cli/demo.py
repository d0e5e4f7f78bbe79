"""`demo`: the server over the embedded sandbox as tenant 'demo', announcing on stderr what it is and how to connect."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from mcp_server_connectwise.cli.arguments import PROGRAM, add_transport_options
from mcp_server_connectwise.cli.config import CLIENTS, launch_command
from mcp_server_connectwise.cli.serve import listen, os_user

WAITING = (
    f"{PROGRAM} demo: waiting for an MCP client on stdin (a stdio server: let a client start it, as shown above); "
    "Ctrl-C stops."
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("demo", help="serve one tenant 'demo' backed by the embedded sandbox (no keys needed)")
    add_transport_options(parser)
    parser.add_argument(
        "--audit-path", metavar="PATH", help="audit log for the demo, kept (default: a temp file, removed on exit)"
    )
    parser.add_argument("--read-only", action="store_true", help="serve only the tools that read")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, notice: str | None = None) -> int:
    """Over HTTP/SSE it binds loopback only and mints a bearer token, printed once on stdout (as `tokens create`
    does): there is no unauthenticated network mode, even for made-up data. On stdio, `notice` ends the server
    instructions (the bundle's, without a config)."""
    import tempfile

    from mcp_server_connectwise.config.models import DEFAULT_CALL_DEADLINE_SECONDS
    from mcp_server_connectwise.connectwise.hosts import is_loopback_host
    from mcp_server_connectwise.http_auth import new_token
    from mcp_server_connectwise.server import Listener, build_demo_app, build_demo_server
    from mcp_server_connectwise.shutdown import grace_seconds, run_stdio

    if args.transport != "stdio" and not is_loopback_host(args.host):
        print(
            f"{PROGRAM}: refusing to listen on {args.host}: the demo binds loopback only (127.0.0.1, ::1 or "
            "localhost); use `serve` with [http] allowed_hosts and allowed_origins to listen beyond this machine",
            file=sys.stderr,
        )
        return 2
    temporary = not args.audit_path
    if args.audit_path:
        audit_path = Path(args.audit_path).expanduser().absolute()
    else:
        fd, name = tempfile.mkstemp(prefix="connectwise-demo-audit-", suffix=".jsonl")
        os.close(fd)
        audit_path = Path(name)
    try:
        if args.transport == "stdio":
            # A client may stop it with SIGTERM rather than by closing stdin: while it serves, that is a graceful
            # shutdown (`shutdown`), after which the finally below cleans up; before and after, clean up then too.
            with _on_sigterm(lambda: _remove_audit(audit_path) if temporary else None):
                server = build_demo_server(
                    audit_path, principal=f"stdio:{os_user()}", read_only=args.read_only, notice=notice
                )
                # Started by a host that knows how to connect it (the bundle), it says what the demo is instead.
                said = banner(args, audit_path, temporary=temporary) if notice is None else f"{PROGRAM} demo: {notice}"
                print(said, file=sys.stderr, flush=True)
                if sys.stdin is not None and sys.stdin.isatty():
                    # Started by hand: without this, a silent terminal looks like a hang.
                    print(WAITING, file=sys.stderr, flush=True)
                run_stdio(server, grace=grace_seconds(DEFAULT_CALL_DEADLINE_SECONDS))
            return 0
        listener = Listener(args.transport, args.host, args.port)
        token = new_token()
        app = build_demo_app(audit_path, listener, token, read_only=args.read_only)
        print(banner(args, audit_path, temporary=temporary), file=sys.stderr, flush=True)
        print(token, flush=True)
        listen(app, listener)
        return 0
    finally:
        if temporary:
            _remove_audit(audit_path)


@contextlib.contextmanager
def _on_sigterm(on_exit: Callable[[], None]) -> Iterator[None]:
    """Run `on_exit` on SIGTERM, then exit 0. While the server runs, SIGTERM is its graceful shutdown instead
    (`shutdown`); this covers the moments before and after, when no call can be in flight."""

    def on_sigterm(signum: int, frame: object) -> None:
        on_exit()
        raise SystemExit(0)

    if threading.current_thread() is not threading.main_thread():  # only the main thread may handle signals
        yield
        return
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _remove_audit(path: Path) -> None:
    """The temporary audit log, any file it was rotated to, and the event store beside it."""
    from mcp_server_connectwise.audit import rotated_files  # loaded already, by the server
    from mcp_server_connectwise.server import demo_events_path

    for _, rotated in rotated_files(path):
        rotated.unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    events = demo_events_path(path)
    for suffix in ("", "-wal", "-shm"):
        events.with_name(events.name + suffix).unlink(missing_ok=True)


def banner(args: argparse.Namespace, audit_path: Path, *, temporary: bool = False) -> str:
    command = launch_command()
    lines = [
        f"{PROGRAM} demo: tenant 'demo' is the built-in ConnectWise SANDBOX (made-up data, in-process, "
        "no network, no keys); writes change only this process's copy.",
        f"Audit log: {audit_path}" + (" (temporary: removed when the demo stops)" if temporary else ""),
    ]
    if args.transport == "stdio":
        lines += [
            "Claude Desktop (claude_desktop_config.json):",
            json.dumps(CLIENTS["claude-desktop"].snippet("connectwise-demo", ["demo"]), indent=2),
            "MCP Inspector:",
            f"npx @modelcontextprotocol/inspector --cli --method tools/list -- {shlex.join([*command, 'demo'])}",
        ]
    else:
        from mcp_server_connectwise.server import Listener

        listener = Listener(args.transport, args.host, args.port)
        url = listener.url
        lines += [
            f"Listening at {url}; every request needs the bearer token printed on stdout: "
            "send `Authorization: Bearer TOKEN`.",
            f"Callbacks: the sandbox calls {listener.origin}/callbacks/demo back on every ticket, note and time "
            "change (a note you add included); get_ticket_events and connectwise://demo/events show them.",
            f"MCP Inspector: npx @modelcontextprotocol/inspector --cli {url} --method tools/list "
            '--header "Authorization: Bearer TOKEN"',
        ]
    return "\n".join(lines)
