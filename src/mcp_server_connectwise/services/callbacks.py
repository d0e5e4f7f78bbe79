"""Registering this server's receiver with a tenant's ConnectWise (`/system/callbacks`), listing and removing
registrations.

A registration names the receiver's public URL, `.../callbacks/TENANT`. [I] ConnectWise appends the record's id
to the URL it calls; the registered URL ends in `?recordId=` so that the id lands in the query and the path
stays the receiver's. Our own writes do not call back by default (`isSelfSuppressedFlag`), and registering the
same URL, type and level again changes nothing (a registration ConnectWise disabled is enabled again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from mcp_server_connectwise.connectwise import AmbiguousWriteError, NotFoundError, endpoints
from mcp_server_connectwise.connectwise.callbacks import CallbackEntry
from mcp_server_connectwise.connectwise.hosts import is_loopback_host
from mcp_server_connectwise.services import resolve
from mcp_server_connectwise.services.errors import Failed, Refused, shown
from mcp_server_connectwise.services.tenancy import TenantSession

RECEIVER_PATH = "/callbacks/{tenant}"  # where the HTTP transport takes a tenant's callbacks
RECORD_ID_QUERY = "recordId="
CallbackType = Literal["ticket", "time"]
Level = Literal["owner", "board"]
OWNER_OBJECT_ID = 1  # level owner: every record of the type (API.md)


def description(tenant: str) -> str:
    """What a registration of this server says it is (at most 100 characters, ConnectWise's limit)."""
    return f"mcp-server-connectwise: events of tenant {tenant}"


def receiver_path(tenant: str) -> str:
    return RECEIVER_PATH.format(tenant=tenant)


def registered_url(url: str, tenant: str) -> str:
    """The URL to register for the receiver at `url`: refused unless it is the tenant's receiver path over https
    (http only on loopback), with `?recordId=` for the id ConnectWise appends."""
    path = receiver_path(tenant)
    parts = urlsplit(url.strip())
    example = f"e.g. https://mcp.example.com{path}"
    try:
        parts.port  # noqa: B018 - urllib validates the port only when it is read
    except ValueError:
        raise Refused(f"--url {shown(url)} has an invalid port; give the receiver's public URL, {example}.") from None
    host = parts.hostname or ""
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(host)):
        raise Refused(
            f"--url {shown(url)} must be https (ConnectWise calls it over the internet; http only on loopback), "
            f"{example}."
        )
    if not host or parts.username is not None or parts.fragment or any(ch in url for ch in "\"' "):
        raise Refused(f"--url {shown(url)} is not a plain URL; give the receiver's public URL, {example}.")
    if not parts.path.rstrip("/").endswith(path):  # a reverse proxy may put it under a prefix
        raise Refused(
            f"--url {shown(url)} must end in {path}, where this server takes tenant {tenant}'s callbacks ({example})."
        )
    if parts.query not in ("", RECORD_ID_QUERY):
        raise Refused(f"--url {shown(url)} must have no query: ConnectWise appends the record's id to it ({example}).")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), RECORD_ID_QUERY, ""))


@dataclass(frozen=True)
class Registered:
    entry: CallbackEntry
    created: bool  # False: it was there already
    reactivated: bool = False  # it was there, disabled, and is enabled again


async def list_callbacks(session: TenantSession) -> list[CallbackEntry]:
    rows = await session.client.list_all(endpoints.CALLBACKS, order_by="id")
    return [CallbackEntry.model_validate(row) for row in rows]


def _same(entry: CallbackEntry, url: str, kind: str, level: str, object_id: int) -> bool:
    return (
        entry.url == url
        and (entry.type or "").lower() == kind
        and (entry.level or "").lower() == level
        and entry.object_id == object_id
    )


async def register_callback(
    session: TenantSession,
    url: str,
    *,
    kind: CallbackType = "ticket",
    level: Level = "owner",
    board: str | None = None,
    self_suppressed: bool = True,
) -> Registered:
    """Register the tenant's receiver at `url` for `kind` records at `level` (`board`: that board's tickets)."""
    if level == "board":
        if kind != "ticket" or board is None:
            raise Refused("Level board takes ticket callbacks of one board: give --type ticket and --board NAME.")
        object_id = (await resolve.board(session, resolve.name_or_id("board", board))).id
    elif board is not None:
        raise Refused("--board goes with --level board; leave it out for level owner (every board).")
    else:
        object_id = OWNER_OBJECT_ID
    wanted = registered_url(url, session.name)
    for entry in await list_callbacks(session):
        if _same(entry, wanted, kind, level, object_id):
            if not entry.inactive_flag:
                return Registered(entry, created=False)
            patched = await session.client.patch(
                endpoints.callback(entry.id), [{"op": "replace", "path": "inactiveFlag", "value": False}]
            )
            return Registered(CallbackEntry.model_validate(patched), created=False, reactivated=True)
    body = {
        "url": wanted,
        "objectId": object_id,
        "type": kind,
        "level": level,
        "description": description(session.name),
        "isSelfSuppressedFlag": self_suppressed,
        "inactiveFlag": False,
    }
    try:
        created = await session.client.post(endpoints.CALLBACKS, body)
    except AmbiguousWriteError:
        raise Failed(
            f"ConnectWise (tenant {session.name}) did not answer the registration, so whether it was made is "
            "unknown; register again: a registration that was made is found, not made twice."
        ) from None
    return Registered(CallbackEntry.model_validate(created), created=True)


async def remove_callback(session: TenantSession, callback_id: int) -> None:
    try:
        await session.client.delete(endpoints.callback(callback_id))
    except NotFoundError:
        raise Refused(f"Tenant {session.name} has no callback {callback_id}; list them to see their ids.") from None
