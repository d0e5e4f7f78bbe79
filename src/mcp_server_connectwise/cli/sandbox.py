"""`sandbox`: the ConnectWise sandbox on 127.0.0.1, until Ctrl-C."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

LOOPBACK = "127.0.0.1"  # never another interface: the sandbox has fixed, published credentials


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("sandbox", help="run the ConnectWise sandbox on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--seed", type=int, default=1, help="seed for the data (default 1), dated relative to the current hour"
    )
    parser.add_argument("--tickets", type=int, default=500, help="number of seeded tickets (default 500)")
    parser.add_argument("--company", default="sandbox", help="login company id (default sandbox)")
    parser.add_argument("--public-key", default="sandbox-public")
    parser.add_argument("--private-key", default="sandbox-private")
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="fraction of requests answered 5xx or dropped (default 0)"
    )
    parser.add_argument("--rate-limit", type=int, default=0, help="requests per minute before 429 (0: off)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="MS", help="added latency per request")
    parser.set_defaults(run=run)


def _not_a_dropped_connection(record: logging.LogRecord) -> bool:
    """uvicorn logs a traceback for every connection the sandbox drops on purpose; keep real errors only."""
    from mcp_server_connectwise.sandbox.faults import DroppedConnection

    return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


def run(args: argparse.Namespace) -> int:
    import logging
    from datetime import datetime, timezone

    import uvicorn

    from mcp_server_connectwise.sandbox.app import create_app
    from mcp_server_connectwise.sandbox.settings import API_ROOT, SandboxSettings, this_hour

    settings = SandboxSettings(
        seed=args.seed,
        tickets=args.tickets,
        company=args.company,
        public_key=args.public_key,
        private_key=args.private_key,
        fault_rate=args.fault_rate,
        rate_limit=args.rate_limit,
        latency_ms=args.latency,
        now=this_hour(),
    )
    base_url = f"http://{LOOPBACK}:{args.port}{API_ROOT}"
    app = create_app(settings, base_url=base_url)
    print(f"ConnectWise sandbox: {base_url}", flush=True)
    print(f"  company: {settings.company}  public key: {settings.public_key}  private key: {settings.private_key}")
    print(f"  Basic auth user: {settings.company}+{settings.public_key}  (any non-empty clientId header)")
    dated = datetime.fromtimestamp(settings.now, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"  {settings.tickets} tickets, seed {settings.seed}, dated up to {dated}. Ctrl-C to stop.", flush=True)
    logging.getLogger("uvicorn.error").addFilter(_not_a_dropped_connection)
    uvicorn.run(app, host=LOOPBACK, port=args.port, log_level="warning")
    return 0
