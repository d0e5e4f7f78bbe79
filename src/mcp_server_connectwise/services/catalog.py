"""Per-tenant reference data (boards, statuses, priorities, members, work types, configuration types and
statuses) cached with a TTL.

Reference data changes rarely and every write validates names against it, so caching it is what lets a
warm `update_ticket` cost two requests. A name that is not found in a cached list triggers one refresh
before the caller is told it does not exist: the cache may simply predate a new status. Such refreshes of one
list are at most one per MISS_REFRESH_SECONDS: a caller guessing names one after another cannot turn each
guess into a reload of the whole list.

With a shared state store (Redis), a list is also kept there, as ConnectWise's rows, for the same TTL: a replica
that lacks a list takes it from there before asking ConnectWise, and keeps it until the shared copy expires.
When the store cannot be reached, each process keeps to its own cache (the store logs that once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from mcp_server_connectwise.connectwise import ConnectWiseClient, endpoints
from mcp_server_connectwise.connectwise.models import (
    Board,
    BoardStatus,
    ConfigurationStatus,
    ConfigurationType,
    CWFlag,
    CWText,
    Member,
    Priority,
    Record,
    WorkType,
)
from mcp_server_connectwise.state.errors import StateUnavailable
from mcp_server_connectwise.state.store import SharedCache

DEFAULT_TTL_SECONDS = 300.0
MISS_REFRESH_SECONDS = 30.0

R = TypeVar("R", bound=Record)


class NamedRecord(Record):
    """Board types, subtypes and items: only an id and a name are needed."""

    name: CWText = None
    inactive_flag: CWFlag = None


@dataclass(frozen=True)
class ReferenceList(Generic[R]):
    """Where a kind of reference data lives, the model its records are read as and which columns to fetch."""

    path: str
    model: type[R]
    fields: tuple[str, ...]


BOARDS = ReferenceList(endpoints.BOARDS, Board, ("id", "name", "inactiveFlag"))
PRIORITIES = ReferenceList(endpoints.PRIORITIES, Priority, ("id", "name", "sortOrder", "defaultFlag"))
MEMBERS = ReferenceList(endpoints.MEMBERS, Member, ("id", "identifier", "firstName", "lastName", "inactiveFlag"))
WORK_TYPES = ReferenceList(endpoints.WORK_TYPES, WorkType, ("id", "name", "inactiveFlag"))
CONFIGURATION_TYPES = ReferenceList(endpoints.CONFIGURATION_TYPES, ConfigurationType, ("id", "name", "inactiveFlag"))
CONFIGURATION_STATUSES = ReferenceList(
    endpoints.CONFIGURATION_STATUSES, ConfigurationStatus, ("id", "description", "closedFlag", "defaultFlag")
)


def board_statuses(board_id: int) -> ReferenceList[BoardStatus]:
    return ReferenceList(
        endpoints.board_statuses(board_id),
        BoardStatus,
        (
            "id",
            "name",
            "sortOrder",
            "closedStatus",
            "timeEntryNotAllowed",
            "defaultFlag",
            "inactive",
            "escalationStatus",
        ),
    )


def board_types(board_id: int) -> ReferenceList[NamedRecord]:
    return ReferenceList(endpoints.board_types(board_id), NamedRecord, ("id", "name", "inactiveFlag"))


def board_subtypes(board_id: int) -> ReferenceList[NamedRecord]:
    return ReferenceList(endpoints.board_subtypes(board_id), NamedRecord, ("id", "name", "inactiveFlag"))


def board_items(board_id: int) -> ReferenceList[NamedRecord]:
    return ReferenceList(endpoints.board_items(board_id), NamedRecord, ("id", "name", "inactiveFlag"))


class Catalog:
    """One tenant's cached reference lists, each fetched in full (all pages) and kept for `ttl` seconds."""

    def __init__(
        self,
        client: ConnectWiseClient,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedCache | None = None,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._shared = shared
        # Keyed by path. Every ReferenceList of one path has the same model, so the list cached under
        # `kind.path` holds `kind.model` records: what `load` casts it back to.
        self._entries: dict[str, tuple[float, Sequence[Record]]] = {}
        self._refreshed_on_miss: dict[str, float] = {}  # path -> when a miss last refreshed it

    async def load(self, kind: ReferenceList[R], *, refresh: bool = False) -> tuple[list[R], bool]:
        """The whole list and whether it was fetched just now (False: served from the cache)."""
        entry = self._entries.get(kind.path)
        if entry is not None and not refresh and self._clock() < entry[0]:
            return cast(list[R], entry[1]), False
        if not refresh and (kept := await self._shared_rows(kind.path)) is not None:
            rows, left = kept
            items = [kind.model.model_validate(row) for row in rows]
            self._entries[kind.path] = (self._clock() + left, items)
            return items, False
        rows = await self._client.list_all(kind.path, fields=kind.fields)
        items = [kind.model.model_validate(row) for row in rows]
        self._entries[kind.path] = (self._clock() + self._ttl, items)
        if self._shared is not None:
            try:
                await self._shared.put(kind.path, rows, self._ttl)
            except StateUnavailable:
                pass  # kept here; the store has said it is gone
        return items, True

    async def _shared_rows(self, path: str) -> tuple[list[dict], float] | None:
        if self._shared is None:
            return None
        try:
            return await self._shared.get(path)
        except StateUnavailable:
            return None

    def cached(self, kind: ReferenceList[R]) -> list[R] | None:
        """The list as cached in this process and still within its TTL, or None: what `load` answers without a
        request to ConnectWise or the shared store."""
        entry = self._entries.get(kind.path)
        return cast(list[R], entry[1]) if entry is not None and self._clock() < entry[0] else None

    async def find(self, kind: ReferenceList[R], matches: Callable[[R], bool]) -> tuple[R | None, list[R]]:
        """The first item that `matches`, refreshing a stale list once on a miss; also the list searched."""
        items, fresh = await self.load(kind)
        found = next((item for item in items if matches(item)), None)
        last = self._refreshed_on_miss.get(kind.path)
        if found is None and not fresh and (last is None or self._clock() - last >= MISS_REFRESH_SECONDS):
            self._refreshed_on_miss[kind.path] = self._clock()
            items, _ = await self.load(kind, refresh=True)
            found = next((item for item in items if matches(item)), None)
        return found, items
