"""Names to ConnectWise records, against the tenant's cached reference data.

Agents know names ("Service Desk", "Waiting on client", "jsmith"), ConnectWise wants ids. Names match
case-insensitively and ignoring repeated spaces; an id (a number) matches too. A miss is refused with the
valid names, so the caller can correct itself without another lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mcp_server_connectwise.connectwise.models import Board, BoardStatus, Member, Priority, Record, WorkType
from mcp_server_connectwise.services import catalog
from mcp_server_connectwise.services.catalog import NamedRecord, ReferenceList
from mcp_server_connectwise.services.errors import Refused
from mcp_server_connectwise.services.tenancy import TenantSession

# Listing every valid name helps until the list itself drowns the message.
MAX_NAMES_LISTED = 40


def normalise(name: str) -> str:
    return " ".join(name.split()).casefold()


def _as_id(value: str | int) -> int | None:
    if isinstance(value, int):
        return value
    text = value.strip()
    return int(text) if text.isdigit() else None


def _by_name_or_id(value: str | int, *names: Callable[[Record], str | None]) -> Callable[[Record], bool]:
    wanted = normalise(str(value))
    wanted_id = _as_id(value)

    def matches(item: Record) -> bool:
        if any((name(item) is not None and normalise(name(item)) == wanted) for name in names):
            return True
        return wanted_id is not None and item.id == wanted_id

    return matches


def name_list(names: Sequence[str | None]) -> str:
    shown = [name for name in names if name][:MAX_NAMES_LISTED]
    more = len([name for name in names if name]) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _active(items: Sequence[Record]) -> list[Record]:
    return [item for item in items if not (getattr(item, "inactive_flag", None) or getattr(item, "inactive", None))]


async def board(session: TenantSession, value: str | int) -> Board:
    found, boards = await session.catalog.find(catalog.BOARDS, _by_name_or_id(value, lambda b: b.name))
    if found is None:
        raise Refused(
            f"There is no board {value!r} in tenant {session.name}; boards: "
            f"{name_list([b.name for b in _active(boards)])}."
        )
    return found


async def status_on_board(session: TenantSession, board_id: int, board_name: str | None, value: str | int) -> BoardStatus:
    """The status called `value` on the board; statuses belong to one board, so another board's is refused."""
    found, statuses = await session.catalog.find(catalog.board_statuses(board_id), _by_name_or_id(value, lambda s: s.name))
    if found is None or found.inactive:
        valid = sorted(_active(statuses), key=lambda s: (s.sort_order or 0, s.id))
        raise Refused(
            f"{value!r} is not a status of board {board_name or board_id} in tenant {session.name}; "
            f"valid statuses: {name_list([s.name for s in valid])}. Nothing was changed."
        )
    return found


async def default_status(session: TenantSession, board_id: int, board_name: str | None) -> BoardStatus:
    statuses, _ = await session.catalog.load(catalog.board_statuses(board_id))
    default = next((s for s in statuses if s.default_flag and not s.inactive), None)
    if default is None:
        raise Refused(
            f"Board {board_name or board_id} has no default status; give status too: "
            f"{name_list([s.name for s in _active(statuses)])}."
        )
    return default


async def priority(session: TenantSession, value: str | int) -> Priority:
    found, priorities = await session.catalog.find(catalog.PRIORITIES, _by_name_or_id(value, lambda p: p.name))
    if found is None:
        raise Refused(
            f"There is no priority {value!r} in tenant {session.name}; priorities: {name_list([p.name for p in priorities])}."
        )
    return found


def _full_name(member: Member) -> str | None:
    names = [part for part in (member.first_name, member.last_name) if part]
    return " ".join(names) or None


async def member(session: TenantSession, value: str | int) -> Member:
    """A member by identifier (login, e.g. "jsmith"), full name or id."""
    found, members = await session.catalog.find(catalog.MEMBERS, _by_name_or_id(value, lambda m: m.identifier, _full_name))
    if found is None or found.inactive_flag:
        raise Refused(
            f"There is no active member {value!r} in tenant {session.name}; give a member identifier such as "
            f"{name_list([m.identifier for m in _active(members)])}."
        )
    return found


async def work_type(session: TenantSession, value: str | int) -> WorkType:
    found, work_types = await session.catalog.find(catalog.WORK_TYPES, _by_name_or_id(value, lambda w: w.name))
    if found is None or found.inactive_flag:
        raise Refused(
            f"There is no work type {value!r} in tenant {session.name}; work types: "
            f"{name_list([w.name for w in _active(work_types)])}."
        )
    return found


async def board_named(
    session: TenantSession, kind: ReferenceList, what: str, board_name: str | None, value: str | int
) -> NamedRecord:
    """A board's type, subtype or item (`what` names which, for the message)."""
    found, items = await session.catalog.find(kind, _by_name_or_id(value, lambda i: i.name))
    if found is None or found.inactive_flag:
        raise Refused(
            f"There is no {what} {value!r} on board {board_name} in tenant {session.name}; "
            f"{what}s: {name_list([i.name for i in _active(items)]) or 'none'}."
        )
    return found
