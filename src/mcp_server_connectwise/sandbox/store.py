"""The sandbox's records: plain JSON dicts per table, shared reference objects, id allocation and parent indexes.

Records never hold `None`: ConnectWise omits null fields from its bodies, so an absent key is null.
Records are replaced, never mutated in place, except the shared reference objects (see `Store.ref`).
"""

from __future__ import annotations

import bisect
import calendar
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from mcp_server_connectwise.sandbox.errors import not_found
from mcp_server_connectwise.sandbox.tables import TABLES

Record = dict[str, Any]

# Field name -> type ("string", "number", "boolean", "datetime", "datestring", "reference", "array", "object")
# per model, transcribed from ConnectWise's schemas (test_sandbox_schemas checks it against them).
# "datestring" is a string the schemas leave unformatted but ConnectWise holds as a date (closedDate, ...).
MODEL_FIELDS: dict[str, dict[str, str]] = json.loads(
    resources.files(__package__).joinpath("fields.json").read_text(encoding="utf-8")
)
# Fields ConnectWise serves beyond the 2025.8 export, per model ([C] in API.md, seen in several independent
# client models): the SLA deadlines it computed for a ticket. Read-only: no write body takes them. [I] They
# take conditions and orderBy like the exported fields do.
UNEXPORTED_FIELDS: dict[str, dict[str, str]] = {
    "Ticket": {"respondByGoalUTC": "datetime", "resplanGoalUTC": "datetime", "resolutionGoalUTC": "datetime"},
}


def query_fields(model: str) -> dict[str, str]:
    """The fields a list of `model` can be filtered, ordered and projected on: the exported and the unexported."""
    return {**MODEL_FIELDS.get(model, {}), **UNEXPORTED_FIELDS.get(model, {})}


def iso(ts: float) -> str:
    """ConnectWise's date-time text: UTC, whole seconds, `Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_iso(text: str) -> float:
    """Seconds since the epoch for a ConnectWise date-time (`2026-01-31T09:00:00Z`, offset or fraction allowed)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def now_iso() -> str:
    return iso(time.time())


def epoch(year: int, month: int, day: int, hour: int = 0) -> float:
    return float(calendar.timegm((year, month, day, hour, 0, 0)))


# The items of /service/tickets/{id}/configurations: ConnectWise's ConfigurationReference (not in schemas/,
# which has no schema for it; the shape is its Go model's), for conditions, orderBy and fields.
CONFIGURATION_REFERENCE_FIELDS = {
    "id": "number",
    "deviceIdentifier": "string",
    "name": "string",
    "type": "reference",
    "_info": "object",
}


@dataclass
class Token:
    """Keys from POST /system/members/{identifier}/tokens: requests with them act as that member."""

    private_key: str
    member: str
    expires: float


class Store:
    """All tables of one sandbox. `store["tickets"][1001]` is a record; a lazy table is built on first use."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.tokens: dict[str, Token] = {}
        self._tables: dict[str, dict[int, Record]] = {}
        self._loaders: dict[str, Callable[[], dict[int, Record]]] = {}
        self._refs: dict[tuple[str, int], Record] = {}
        self._next_ids: dict[str, int] = {}
        self._children: dict[str, dict[int, list[int]]] = {}
        # /service/tickets/{id}/configurations: ticket id -> the ids of the configurations attached to it, in id
        # order. ConnectWise keeps this as a link table, not as a field of the ticket.
        self.ticket_configurations: dict[int, list[int]] = {}

    # --- tables ----------------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> dict[int, Record]:
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = self._loaders.pop(name)()
        return table

    def set_table(self, name: str, rows: dict[int, Record]) -> None:
        self._tables[name] = rows

    def set_lazy(self, name: str, loader: Callable[[], dict[int, Record]]) -> None:
        """`loader` builds the table the first time anything reads it (keeps seeding 100k tickets fast)."""
        self._loaders[name] = loader

    def load_all(self) -> None:
        """Build every lazy table: a write must see, and keep consistent, all the records it touches."""
        for name in list(self._loaders):
            self[name]

    def get(self, name: str, record_id: int) -> Record:
        record = self[name].get(record_id)
        if record is None:
            raise not_found(TABLES[name].label, record_id)
        return record

    def next_id(self, name: str) -> int:
        rows = self[name]
        next_id = max(self._next_ids.get(name, 1), (next(reversed(rows)) + 1) if rows else 1)
        self._next_ids[name] = next_id + 1  # never reuse the id of a deleted record
        return next_id

    # --- writes keep the indexes and shared references current -----------------------------------------

    def put(self, name: str, record: Record) -> None:
        """Insert or replace `record` (by its id)."""
        rows = self[name]
        old = rows.get(record["id"])
        rows[record["id"]] = record
        parent = TABLES[name].parent
        if parent is not None and name in self._children:
            old_parent = parent.id_of(old) if old is not None else None
            new_parent = parent.id_of(record)
            if old is None or old_parent != new_parent:
                self._unindex(name, old_parent, record["id"])
                if new_parent is not None:
                    bisect.insort(self._children[name].setdefault(new_parent, []), record["id"])
        if old is not None and (name, record["id"]) in self._refs:
            shared = self._refs[(name, record["id"])]
            fresh = self._build_ref(name, record)
            shared.clear()
            shared.update(fresh)

    def delete(self, name: str, record_id: int) -> Record:
        record = self[name].pop(record_id, None)
        if record is None:
            raise not_found(TABLES[name].label, record_id)
        parent = TABLES[name].parent
        if parent is not None and name in self._children:
            self._unindex(name, parent.id_of(record), record_id)
        return record

    def _unindex(self, name: str, parent: int | None, record_id: int) -> None:
        ids = self._children[name].get(parent) if parent is not None else None
        if ids:
            index = bisect.bisect_left(ids, record_id)
            if index < len(ids) and ids[index] == record_id:
                del ids[index]

    def children(self, name: str, parent_id: int) -> list[Record]:
        """Records of child table `name` under parent `parent_id`, in id order."""
        index = self._children.get(name)
        if index is None:
            index = self._children[name] = {}
            link = TABLES[name].parent
            assert link is not None, f"{name} is not a child table"
            parent_of = link.id_of
            for record_id, record in self[name].items():
                parent = parent_of(record)
                if parent is not None:
                    index.setdefault(parent, []).append(record_id)
        rows = self[name]
        return [rows[i] for i in index.get(parent_id, ())]

    # --- references ------------------------------------------------------------------------------------

    def ref(self, name: str, record_id: int) -> Record:
        """The reference object to a record (`{"id", "name", "_info": {..._href}}`), shared by every record
        that points at it, so that renaming the target shows everywhere as it does in ConnectWise."""
        key = (name, record_id)
        shared = self._refs.get(key)
        if shared is None:
            shared = self._refs[key] = self._build_ref(name, self.get(name, record_id))
        return shared

    def _build_ref(self, name: str, record: Record) -> Record:
        table = TABLES[name]
        ref: Record = {"id": record["id"]}
        if table.person:
            ref["identifier"] = record.get("identifier")
            ref["name"] = f"{record.get('firstName', '')} {record.get('lastName', '')}".strip()
        for ref_key, record_key in table.ref_fields:
            if ref_key not in ref and record.get(record_key) is not None:
                ref[ref_key] = record[record_key]
        href = self.href(name, record)
        if href is not None:
            ref["_info"] = {f"{table.resource}_href": href}
        return {k: v for k, v in ref.items() if v is not None}

    def href(self, name: str, record: Record) -> str | None:
        """The record's URL, or None for a table the sandbox does not serve."""
        table = TABLES[name]
        if not table.path:
            return None
        parent_id = table.parent.id_of(record) if table.parent is not None else None
        return f"{self.base_url}/{table.collection(parent_id)}/{record['id']}"

    def info_links(self, name: str, record_id: int) -> dict[str, str]:
        """The links of a record's `_info` to its children: a ticket's notes_href and timeentries_href."""
        links = {}
        for child_name in TABLES[name].info_links:
            child = TABLES[child_name]
            assert child.parent is not None
            path = (
                child.collection(record_id)
                if child.parent.in_path
                else f"{child.path}?conditions={child.parent.field}={record_id}"
            )
            links[f"{child_name.lower()}_href"] = f"{self.base_url}/{path}"
        return links

    def configuration_reference(self, configuration_id: int) -> Record:
        """An item of /service/tickets/{id}/configurations, built from the configuration as it is now."""
        configuration = self.get("configurations", configuration_id)
        ref: Record = {"id": configuration_id}
        for key in ("deviceIdentifier", "name", "type"):
            if configuration.get(key) is not None:
                ref[key] = configuration[key]
        ref["_info"] = {"configuration_href": self.href("configurations", configuration)}
        return ref

    def find(self, name: str, key: str, value: object) -> Record | None:
        """The first record whose `key` equals `value` (text compared case-insensitively, as SQL Server does)."""
        if isinstance(value, str):
            wanted = value.casefold()
            for record in self[name].values():
                candidate = record.get(key)
                if isinstance(candidate, str) and candidate.casefold() == wanted:
                    return record
            if TABLES[name].person and key == "name":
                for record in self[name].values():
                    if f"{record.get('firstName', '')} {record.get('lastName', '')}".strip().casefold() == wanted:
                        return record
            return None
        for record in self[name].values():
            if record.get(key) == value:
                return record
        return None
