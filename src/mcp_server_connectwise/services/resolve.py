"""Names to ConnectWise records, against the tenant's cached reference data.

Agents know names ("Service Desk", "Waiting on client", "jsmith"), ConnectWise wants ids. Names match
case-insensitively and ignoring repeated spaces; an id (a number, ASCII digits only) matches too. A miss is
refused with the valid names, so the caller can correct itself without another lookup.

`name_or_id` and `moment` refuse, before any request, what no record could match or ConnectWise
could not store: ids outside int32, empty or over-long names, date-times without a zone or outside 1753..9999.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import TypeVar

from mcp_server_connectwise.connectwise.models import (
    Board,
    BoardStatus,
    ConfigurationStatus,
    ConfigurationType,
    Member,
    Priority,
    Record,
    WorkType,
)
from mcp_server_connectwise.services import catalog
from mcp_server_connectwise.services.arguments import MAX_ID
from mcp_server_connectwise.services.catalog import NamedRecord, ReferenceList
from mcp_server_connectwise.services.errors import Look, Refused, shown
from mcp_server_connectwise.services.tenancy import TenantSession

# Listing every valid name helps until the list itself drowns the message.
MAX_NAMES_LISTED = 40
# ConnectWise names are at most 50 characters (a member's full name 61): a longer one can match nothing.
MAX_NAME_CHARS = 100
# ConnectWise keeps date-times in SQL Server `datetime`, which holds 1753-01-01 to 9999-12-31.
EARLIEST = datetime(1753, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)

R = TypeVar("R", bound=Record)
T = TypeVar("T")


def collapse(text: str) -> str:
    """`text` with each run of whitespace as one space and none at the ends."""
    return " ".join(text.split())


def normalise(name: str) -> str:
    return collapse(name).casefold()


def as_id(value: str | int) -> int | None:
    if isinstance(value, int):
        return value
    text = value.strip()
    # ASCII digits only: str.isdigit() also accepts "²" (int() fails) and "٣" (int() reads 3).
    if text.isascii() and text.isdigit() and len(text) <= len(str(MAX_ID)):
        return int(text)
    return None


def name_or_id(argument: str, value: str | int) -> str | int:
    """`value` of `argument` if it could name a record; refused before any request if it cannot: a yes/no,
    an id ConnectWise cannot have, an empty or an over-long name."""
    if isinstance(value, bool):
        raise Refused(f"{argument} takes a name or an id, not {str(value).lower()}.")
    if isinstance(value, int):
        if not 1 <= value <= MAX_ID:
            raise Refused(
                f"{argument} {shown(value)} is not an id ConnectWise can have (ids run from 1 to {MAX_ID}); give the name instead."
            )
        return value
    name = collapse(value)
    if not name:
        raise Refused(f"{argument} is empty; give a name, or leave {argument} out.")
    if len(name) > MAX_NAME_CHARS:
        raise Refused(
            f"{argument} is {len(name)} characters long, but ConnectWise names have at most 50, so nothing can match; "
            "give the name as ConnectWise shows it."
        )
    return value


def moment(argument: str, value: datetime) -> datetime:
    """`value` of `argument` if ConnectWise can take it: with a time zone, and within the dates ConnectWise
    stores. Refused otherwise, before any request."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise Refused(f"{argument} {value.isoformat()} has no time zone; add one, e.g. 'Z' or '+02:00'.")
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise Refused(
            f"{argument} {value.isoformat()} is outside the dates ConnectWise can store "
            f"({EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} UTC); give a date in that range."
        )
    return value


def _by_name_or_id(value: str | int, *names: Callable[[R], str | None]) -> Callable[[R], bool]:
    wanted = normalise(str(value))
    wanted_id = as_id(value)

    def matches(item: R) -> bool:
        if any(((text := name(item)) is not None and normalise(text) == wanted) for name in names):
            return True
        return wanted_id is not None and item.id == wanted_id

    return matches


def name_list(names: Sequence[str | None], limit: int = MAX_NAMES_LISTED) -> str:
    listed = [name for name in names if name][:limit]
    more = len([name for name in names if name]) - len(listed)
    return ", ".join(listed) + (f" and {more} more" if more > 0 else "")


async def one_of(
    value: str | int,
    candidates: Sequence[T],
    *,
    shown_as: Callable[[T], str],
    several: str,
    give: str,
    none: Callable[[], Awaitable[str]],
    look: Look | None = None,
    more: bool = False,
    listed: int | None = None,
) -> T:
    """The only one of `candidates`, the records `value` matched. Several are refused naming them all ("<value>
    matches 3 <several>: <each shown_as>; give <give>."; `more`: they are a first page of more, `listed`: name
    at most that many); none with the sentence `none()` makes, which may look up who there is instead."""
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        names = [shown_as(candidate) for candidate in candidates]
        raise Refused(
            f"{shown(value)} matches {'more than ' if more else ''}{len(candidates)} {several}: "
            f"{name_list(names, listed or len(names))}; give {give}.",
            look=look,
        )
    raise Refused(await none(), look=look)


def _active(items: Sequence[R]) -> list[R]:
    return [item for item in items if not (getattr(item, "inactive_flag", None) or getattr(item, "inactive", None))]


async def board(session: TenantSession, value: str | int) -> Board:
    found, boards = await session.catalog.find(catalog.BOARDS, _by_name_or_id(value, lambda b: b.name))
    if found is None:
        raise Refused(
            f"There is no board {shown(value)} in tenant {session.name}; boards: "
            f"{name_list([b.name for b in _active(boards)])}."
        )
    return found


async def status_on_board(
    session: TenantSession, board_id: int, board_name: str | None, value: str | int
) -> BoardStatus:
    """The status called `value` on the board; statuses belong to one board, so another board's is refused."""
    found, statuses = await session.catalog.find(
        catalog.board_statuses(board_id), _by_name_or_id(value, lambda s: s.name)
    )
    if found is None or found.inactive:
        valid = sorted(_active(statuses), key=lambda s: (s.sort_order or 0, s.id))
        raise Refused(
            f"{shown(value)} is not a status of board {board_name or board_id} in tenant {session.name}; "
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
            f"There is no priority {shown(value)} in tenant {session.name}; priorities: {name_list([p.name for p in priorities])}."
        )
    return found


def _full_name(member: Member) -> str | None:
    names = [part for part in (member.first_name, member.last_name) if part]
    return " ".join(names) or None


async def member(session: TenantSession, value: str | int, *, active: bool = True) -> Member:
    """A member by identifier (login, e.g. "jsmith"), full name or id; with `active` False, also one no longer
    active (whose past time can still be read)."""
    found, members = await session.catalog.find(
        catalog.MEMBERS, _by_name_or_id(value, lambda m: m.identifier, _full_name)
    )
    if found is None or (active and found.inactive_flag):
        raise Refused(
            f"There is no {'active ' if active else ''}member {shown(value)} in tenant {session.name}; give a member "
            f"identifier such as {name_list([m.identifier for m in _active(members)])}."
        )
    return found


async def work_type(session: TenantSession, value: str | int) -> WorkType:
    found, work_types = await session.catalog.find(catalog.WORK_TYPES, _by_name_or_id(value, lambda w: w.name))
    if found is None or found.inactive_flag:
        raise Refused(
            f"There is no work type {shown(value)} in tenant {session.name}; work types: "
            f"{name_list([w.name for w in _active(work_types)])}."
        )
    return found


async def board_named(
    session: TenantSession, kind: ReferenceList[NamedRecord], what: str, board_name: str | None, value: str | int
) -> NamedRecord:
    """A board's type, subtype or item (`what` names which, for the message)."""
    found, items = await session.catalog.find(kind, _by_name_or_id(value, lambda i: i.name))
    if found is None or found.inactive_flag:
        raise Refused(
            f"There is no {what} {shown(value)} on board {board_name} in tenant {session.name}; "
            f"{what}s: {name_list([i.name for i in _active(items)]) or 'none'}."
        )
    return found


async def configuration_type(session: TenantSession, value: str | int, *, writing: bool) -> ConfigurationType:
    """A configuration type by name or id; an inactive one only to search by (`writing` refuses it)."""
    found, types = await session.catalog.find(catalog.CONFIGURATION_TYPES, _by_name_or_id(value, lambda t: t.name))
    if found is None or (writing and found.inactive_flag):
        raise Refused(
            f"There is no {'active ' if writing else ''}configuration type {shown(value)} in tenant {session.name}; "
            f"types: {name_list([t.name for t in _active(types)]) or 'none'}."
        )
    return found


async def configuration_status(session: TenantSession, value: str | int) -> ConfigurationStatus:
    """A configuration status by its name (ConnectWise's `description`) or id."""
    found, statuses = await session.catalog.find(
        catalog.CONFIGURATION_STATUSES, _by_name_or_id(value, lambda s: s.description)
    )
    if found is None:
        raise Refused(
            f"There is no configuration status {shown(value)} in tenant {session.name}; statuses: "
            f"{name_list([s.description for s in statuses]) or 'none'}."
        )
    return found


def search_text(argument: str, value: str | None, at_most: int) -> str | None:
    """A search filter's text, whitespace collapsed (None when blank: no filter); refused when no record could
    match text that long (longer than `at_most`: what the fields searched hold)."""
    text = collapse(value) if value else ""
    if len(text) > at_most:
        raise Refused(
            f"{argument} is {len(text)} characters long; search text can have at most {at_most} "
            "(longer matches nothing), so shorten it."
        )
    return text or None


def check_page(page: int) -> None:
    if page > MAX_ID:
        raise Refused(f"page {shown(page)} is past any result; use next_page from an earlier search.")
