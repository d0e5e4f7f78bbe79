"""`callbacks register TENANT --url URL [--type ticket] [--level owner|board] [--board NAME] | list TENANT |
remove TENANT ID | status`: this server's callback registrations in a tenant's ConnectWise, and its event store.

They talk to ConnectWise as the server does: the tenant's config and its keys from the OS keyring. `register`
is safe to repeat: a registration of the same URL, type and level is found and left as it is.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from mcp_server_connectwise.cli.arguments import PROGRAM, add_config_option

if TYPE_CHECKING:
    from mcp_server_connectwise.config import AppConfig
    from mcp_server_connectwise.services.tenancy import TenantSession


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "callbacks", help="register the callback receiver with a tenant's ConnectWise; list, remove; event store status"
    )
    add_config_option(parser)
    actions = parser.add_subparsers(dest="callbacks_command", metavar="ACTION", required=True)
    register = actions.add_parser("register", help="have ConnectWise call this server back on changes")
    register.add_argument("tenant")
    register.add_argument(
        "--url", required=True, help="the receiver's public URL: https://HOST/callbacks/TENANT (the HTTP transport's)"
    )
    register.add_argument("--type", choices=["ticket", "time"], default="ticket", help="record type (default ticket)")
    register.add_argument(
        "--level", choices=["owner", "board"], default="owner", help="owner: every record (default); board: one board's"
    )
    register.add_argument("--board", metavar="NAME", help="the board, for --level board")
    listing = actions.add_parser("list", help="list the tenant's callback registrations")
    listing.add_argument("tenant")
    remove = actions.add_parser("remove", help="remove a callback registration by its id")
    remove.add_argument("tenant")
    remove.add_argument("id", type=int)
    actions.add_parser("status", help="the event store: its path, size and events per tenant")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from mcp_server_connectwise.config import load_config

    config = load_config(args.config)
    if args.callbacks_command == "status":
        return _status(config)
    return asyncio.run(_in_connectwise(config, args))


async def _in_connectwise(config: AppConfig, args: argparse.Namespace) -> int:
    from mcp_server_connectwise.connectwise import ConnectWiseError
    from mcp_server_connectwise.secrets import KeyStore
    from mcp_server_connectwise.services.errors import ServiceError, explain
    from mcp_server_connectwise.services.tenancy import Tenants

    tenant = config.tenant(args.tenant)  # an unknown one is a ConfigError naming the known ones
    tenants = Tenants(config, key_store=KeyStore.for_config(config, warn=_warn))
    try:
        session = await tenants.open_session(tenant)
        if args.callbacks_command == "register":
            return await _register(session, args)
        if args.callbacks_command == "list":
            return await _list(session)
        if args.callbacks_command == "remove":
            return await _remove(session, args.id)
        raise AssertionError(f"unhandled callbacks command {args.callbacks_command}")
    except ServiceError as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
    except ConnectWiseError as exc:
        print(f"{PROGRAM}: {explain(exc, tenant.name)}", file=sys.stderr)
    finally:
        await tenants.aclose()
    return 1


def _warn(message: str) -> None:
    print(f"{PROGRAM}: warning: {message}", file=sys.stderr, flush=True)


async def _register(session: TenantSession, args: argparse.Namespace) -> int:
    from mcp_server_connectwise.services.callbacks import register_callback

    registered = await register_callback(session, args.url, kind=args.type, level=args.level, board=args.board)
    entry = registered.entry
    what = f"callback {entry.id} of tenant {session.name} ({entry.type}, level {entry.level}) to {entry.url}"
    if registered.created:
        print(f"registered {what}; this server's own writes do not call back")
    elif registered.reactivated:
        print(f"{what} was there but disabled (ConnectWise disables one after 3 days of failures): enabled again")
    else:
        print(f"{what} is registered already: nothing changed")
    return 0


async def _list(session: TenantSession) -> int:
    from mcp_server_connectwise.services.callbacks import description, list_callbacks, receiver_path

    entries = await list_callbacks(session)
    if not entries:
        print(f"Tenant {session.name} has no callbacks registered.")
        return 0
    print(f"Callbacks of tenant {session.name}:")
    for entry in entries:
        ours = entry.description == description(session.name) or receiver_path(session.name) in (entry.url or "")
        flags = [
            "inactive" if entry.inactive_flag else "active",
            *(["own writes suppressed"] if entry.is_self_suppressed_flag else []),
            *(["this server"] if ours else []),
        ]
        print(
            f"  {entry.id}  {entry.type} level {entry.level} (object {entry.object_id})  {entry.url}  "
            f"[{', '.join(flags)}]  {entry.description or ''}".rstrip()
        )
    return 0


async def _remove(session: TenantSession, callback_id: int) -> int:
    from mcp_server_connectwise.services.callbacks import remove_callback

    await remove_callback(session, callback_id)
    print(f"removed callback {callback_id} of tenant {session.name}")
    return 0


def _status(config: AppConfig) -> int:
    limits = f"kept {config.events.retention_days} days, at most {config.events.max_events_per_tenant:,} per tenant"
    if config.state.url is not None:
        import asyncio

        return asyncio.run(_shared_status(config, limits))
    from mcp_server_connectwise.state.events import EventLogUnavailable, event_log

    log = event_log(config)
    if not log.path.exists():
        print(f"Event store: {log.path} (not created yet: no callback has arrived; {limits})")
        return 0
    try:
        size = log.size()
    except EventLogUnavailable as exc:
        print(f"{PROGRAM}: {log.path}: {exc}", file=sys.stderr)
        return 1
    finally:
        log.close()
    print(f"Event store: {size.path} ({size.bytes:,} bytes; {limits})")
    for tenant in config.tenants:
        print(f"  {tenant}: {size.events.get(tenant, 0):,} events")
    return 0


async def _shared_status(config: AppConfig, limits: str) -> int:
    from mcp_server_connectwise.state.events import EventLogUnavailable
    from mcp_server_connectwise.state.redis import RedisState

    state = RedisState(config.state)
    try:
        log = state.event_log(config)
        counts = {tenant: await log.count(tenant) for tenant in config.tenants}
    except EventLogUnavailable as exc:
        print(f"{PROGRAM}: {exc} {exc.remedy}", file=sys.stderr)
        return 1
    finally:
        await state.aclose()
    print(f"Event store: Redis at {config.state.shown_url} ({limits})")
    for tenant, count in counts.items():
        print(f"  {tenant}: {count:,} events")
    return 0
