"""`mcp-server-connectwise sandbox`: the sandbox on 127.0.0.1, until Ctrl-C."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from mcp_server_connectwise.sandbox.app import create_app
from mcp_server_connectwise.sandbox.faults import DroppedConnection
from mcp_server_connectwise.sandbox.settings import API_ROOT, SandboxSettings

LOOPBACK = "127.0.0.1"  # never another interface: the sandbox has fixed, published credentials


class _QuietInjectedDrops(logging.Filter):
    """uvicorn logs a traceback for every connection the sandbox drops on purpose; keep real errors only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


def settings_from_args(args: argparse.Namespace) -> SandboxSettings:
    return SandboxSettings(
        seed=args.seed, tickets=args.tickets, company=args.company, public_key=args.public_key,
        private_key=args.private_key, fault_rate=args.fault_rate, rate_limit=args.rate_limit, latency_ms=args.latency,
    )


def run_sandbox(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    base_url = f"http://{LOOPBACK}:{args.port}{API_ROOT}"
    app = create_app(settings, base_url=base_url)
    print(f"ConnectWise sandbox: {base_url}", flush=True)
    print(f"  company: {settings.company}  public key: {settings.public_key}  private key: {settings.private_key}")
    print(f"  Basic auth user: {settings.company}+{settings.public_key}  (any non-empty clientId header)")
    print(f"  {settings.tickets} tickets, seed {settings.seed}. Ctrl-C to stop.", flush=True)
    logging.getLogger("uvicorn.error").addFilter(_QuietInjectedDrops())
    uvicorn.run(app, host=LOOPBACK, port=args.port, log_level="warning")
    return 0
