"""A time sheet read back, and a time entry corrected while ConnectWise still lets its member change it.

`list_time_entries`: one member's entries or one ticket's, over at most `MAX_DAYS` days, with hours per day
and billable totals. Without member and ticket it is the caller's member (a principal's `member`), else the
tenant's configured `member` (the server's "me"); without dates, the current week, Monday to Sunday (a ticket's alone: all its time). Days
are UTC days, as ConnectWise stores times. One bounded page walk (`MAX_PAGES` pages of `PAGE_SIZE`, only the
fields shown); past that the answer says so rather than cut silently.

`update_time_entry`: the checks `create_time_entry` makes (`time_entries.work_period`, the ticket's no-time
statuses for a change of times), then one JSON Patch of only the fields that change. An entry in approval or
billed is refused and nothing is sent. `billableOption` goes with every patch: ConnectWise requires it on
updates. The PATCH only replaces, so it is idempotent and the client may re-send it after a lost answer; an
answer still lost is settled by reading the entry back after `write_recovery.SETTLE_SECONDS`, and a repeat of
a call whose outcome was unknown reads the entry first and sends only what is still different.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import NotFoundError, endpoints
from mcp_server_connectwise.connectwise.conditions import Expr, and_, eq, ge, le, lt
from mcp_server_connectwise.connectwise.models import EDITABLE_TIME_ENTRY_STATUSES, TimeEntry, label, read_moment
from mcp_server_connectwise.connectwise.times import utc_text
from mcp_server_connectwise.services import clock, resolve, write_recovery
from mcp_server_connectwise.services.arguments import MAX_ID, NameOrId, TicketId, iso_text, not_a_yes_no
from mcp_server_connectwise.services.errors import Look, Refused
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.tickets import read_ticket
from mcp_server_connectwise.services.time_entries import (
    STORED_TIME_TOLERANCE,
    TICKET_CHARGE_TYPES,
    BillableOption,
    cleaned,
    refuse_if_time_not_allowed,
    ticket_time_entries,
    work_period,
)
from mcp_server_connectwise.services.updates import FieldChange
from mcp_server_connectwise.services.write_recovery import same_text
from mcp_server_connectwise.untrusted import UntrustedText, clean_untrusted, untrusted_notice

# A month's time sheet at most: a longer span is a report, not a time sheet.
MAX_DAYS = 31
DEFAULT_DAYS = 7
# The page walk: at most MAX_PAGES * PAGE_SIZE entries, a busy member's fortnight, about 30 KB of answer.
PAGE_SIZE = 50
MAX_PAGES = 2
MAX_ENTRIES = PAGE_SIZE * MAX_PAGES
# Each entry's notes as a list shows them; get_ticket_details shows them at length.
MAX_LISTED_NOTE_CHARS = 200
# The columns a time sheet shows (a partial response: `fields`).
_LISTED_FIELDS = (
    "id",
    "chargeToId",
    "chargeToType",
    "member/identifier",
    "timeStart",
    "timeEnd",
    "actualHours",
    "billableOption",
    "workType/name",
    "status",
    "notes",
)
# Past EDITABLE_TIME_ENTRY_STATUSES an entry is in approval, or one of these: billed, or written off.
_BILLED_STATUSES = ("Billed", "BilledAgreement", "WrittenOff")
_DAY_TEXT = re.compile(r"\s*\d{4}-\d{2}-\d{2}\s*")


def _day_text(value: Any) -> Any:
    """Before validation: a day is YYYY-MM-DD, not a date-time (whose zone would be dropped) nor a number."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if not isinstance(value, str) or not _DAY_TEXT.fullmatch(value):
        raise ValueError("must be a day as YYYY-MM-DD, e.g. 2026-10-26")
    return value.strip()


Day = Annotated[date | None, BeforeValidator(_day_text)]
EntryId = Annotated[
    int, Field(ge=1, le=MAX_ID, description="The time entry's id, e.g. 25."), BeforeValidator(not_a_yes_no)
]


# --- list_time_entries -------------------------------------------------------------------------------------


class TimeSheetQuery(BaseModel):
    member: Annotated[
        NameOrId,
        Field(
            description="Identifier or full name; default: the caller's, else the tenant's member, unless ticket_id."
        ),
    ] = None
    ticket_id: Annotated[TicketId | None, Field(description="Only this ticket's entries.")] = None
    date_from: Annotated[Day, Field(description="First UTC day; default: this week's Monday.")] = None
    date_to: Annotated[Day, Field(description="Last day, included; default: 6 days on.")] = None


class ListedTimeEntry(BaseModel):
    id: int
    ticket_id: int | None = None
    charged_to: str | None = Field(None, description="When not a ticket.")
    member: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    hours: float | None = None
    billable_option: str | None = None
    work_type: str | None = None
    status: str | None = None
    notes: UntrustedText | None = None

    @classmethod
    def from_entry(cls, entry: TimeEntry) -> ListedTimeEntry:
        on_ticket = entry.charge_to_type in TICKET_CHARGE_TYPES
        return cls(
            id=entry.id,
            ticket_id=entry.charge_to_id if on_ticket else None,
            charged_to=None if on_ticket else entry.charge_to_type,
            member=label(entry.member),
            start=entry.time_start,
            end=entry.time_end,
            hours=_hours(entry),
            billable_option=entry.billable_option,
            work_type=label(entry.work_type),
            status=entry.status,
            notes=clean_untrusted(entry.notes, MAX_LISTED_NOTE_CHARS) if entry.notes else None,
        )


class TimeSheet(BaseModel):
    tenant: str
    member: str | None = None
    ticket_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    entries: list[ListedTimeEntry] = Field(description="Earliest first.")
    hours_per_day: dict[str, float] = Field(description="By UTC day of the start.")
    total_hours: float
    billable_hours: float = Field(description="billable_option Billable.")
    non_billable_hours: float
    more: bool | None = Field(None, description=f"More than {MAX_ENTRIES} match: the figures cover the first.")
    notice: str = untrusted_notice("entries[].notes")


def _hours(entry: TimeEntry) -> float | None:
    if entry.actual_hours is not None:
        return entry.actual_hours
    if entry.time_start is not None and entry.time_end is not None:
        return round((entry.time_end - entry.time_start).total_seconds() / 3600, 2)
    return None


def _within_storable(day: date, days: int) -> date:
    """`day` moved by `days`, kept within the dates ConnectWise stores."""
    earliest, latest = resolve.EARLIEST.date(), resolve.LATEST.date()
    if days < 0:
        return earliest if (day - earliest).days < -days else day + timedelta(days=days)
    return latest if (latest - day).days < days else day + timedelta(days=days)


def time_sheet_days(query: TimeSheetQuery, today: date) -> tuple[date, date] | None:
    """The first and last day to list, or None for all of a ticket's time; refused if the range is backwards,
    too long, or outside what ConnectWise stores."""
    if query.date_from is None and query.date_to is None:
        if query.ticket_id is not None:
            return None
        monday = today - timedelta(days=today.weekday())
        return monday, monday + timedelta(days=DEFAULT_DAYS - 1)
    for argument, day in (("date_from", query.date_from), ("date_to", query.date_to)):
        if day is not None and not resolve.EARLIEST.date() <= day <= resolve.LATEST.date():
            raise Refused(
                f"{argument} {day.isoformat()} is outside the dates ConnectWise can store "
                f"({resolve.EARLIEST:%Y-%m-%d} to {resolve.LATEST:%Y-%m-%d}); give a day in that range."
            )
    if query.date_from is not None:
        first = query.date_from
        last = query.date_to or _within_storable(first, DEFAULT_DAYS - 1)
    else:
        assert query.date_to is not None  # one of the two is given: returned above otherwise
        last = query.date_to
        first = _within_storable(last, 1 - DEFAULT_DAYS)
    if last < first:
        raise Refused(f"date_to ({last.isoformat()}) is before date_from ({first.isoformat()}); swap them.")
    if (last - first).days + 1 > MAX_DAYS:
        raise Refused(
            f"A time sheet covers at most {MAX_DAYS} days and {first.isoformat()} to {last.isoformat()} is "
            f"{(last - first).days + 1}; list it a month at a time."
        )
    return first, last


def _started_within(first: date, last: date) -> Expr | None:
    start = datetime.combine(first, time(), timezone.utc)
    if last == resolve.LATEST.date():  # no next day to stop before
        return and_(ge("timeStart", start), le("timeStart", resolve.LATEST))
    return and_(
        ge("timeStart", start), lt("timeStart", datetime.combine(last + timedelta(days=1), time(), timezone.utc))
    )


def _check_query(session: TenantSession, query: TimeSheetQuery) -> str | int | None:
    """The member to list for (None: a ticket's entries of every member), refused before any request if there
    is none to be had or it could name no member."""
    if query.member is not None:
        return resolve.name_or_id("member", query.member)
    if query.ticket_id is not None:
        return None
    if session.member is None:
        raise Refused(
            f"Tenant {session.name} has no configured member to list time for; give member (e.g. its identifier) "
            "or ticket_id."
        )
    return session.member


async def list_time_entries(session: TenantSession, query: TimeSheetQuery, today: date | None = None) -> TimeSheet:
    member_name = _check_query(session, query)
    days = time_sheet_days(query, today or clock.now().date())
    # A member no longer active still has a time sheet to review.
    member = await resolve.member(session, member_name, active=False) if member_name is not None else None
    conditions = and_(
        eq("member/id", member.id) if member is not None else None,
        ticket_time_entries(query.ticket_id) if query.ticket_id is not None else None,
        _started_within(*days) if days is not None else None,
    )
    rows: list[dict] = []
    more = False
    for page_number in range(1, MAX_PAGES + 1):
        page = await session.client.get_page(
            endpoints.TIME_ENTRIES,
            conditions=conditions,
            order_by="timeStart asc, id asc",
            fields=_LISTED_FIELDS,
            page=page_number,
            page_size=PAGE_SIZE,
        )
        rows.extend(page.items)
        if not page.has_next or not page.items:
            break
    else:
        more = True
    entries = [ListedTimeEntry.from_entry(TimeEntry.model_validate(row)) for row in rows]
    return _totalled(session, query, member.identifier if member else None, days, entries, more)


def _totalled(
    session: TenantSession,
    query: TimeSheetQuery,
    member: str | None,
    days: tuple[date, date] | None,
    entries: list[ListedTimeEntry],
    more: bool,
) -> TimeSheet:
    per_day: dict[str, float] = {}
    if days is not None:
        first, last = days
        per_day = {(first + timedelta(days=n)).isoformat(): 0.0 for n in range((last - first).days + 1)}
    billable = non_billable = 0.0
    for entry in entries:
        hours = entry.hours or 0.0
        if entry.billable_option == "Billable":
            billable += hours
        else:
            non_billable += hours
        if entry.start is not None:
            day = entry.start.astimezone(timezone.utc).date().isoformat()
            per_day[day] = per_day.get(day, 0.0) + hours
    return TimeSheet(
        tenant=session.name,
        member=member,
        ticket_id=query.ticket_id,
        date_from=days[0] if days else None,
        date_to=days[1] if days else None,
        entries=entries,
        hours_per_day={day: round(hours, 2) for day, hours in sorted(per_day.items())},
        total_hours=round(billable + non_billable, 2),
        billable_hours=round(billable, 2),
        non_billable_hours=round(non_billable, 2),
        more=True if more else None,
    )


# --- update_time_entry -------------------------------------------------------------------------------------


class TimeEntryChanges(BaseModel):
    """What to change on time entry `entry_id`; None leaves a field as it is."""

    entry_id: EntryId
    start: Annotated[
        datetime | None, Field(description="The end stays unless end or hours."), BeforeValidator(iso_text)
    ] = None
    end: Annotated[datetime | None, BeforeValidator(iso_text)] = None
    hours: Annotated[float | None, Field(gt=0, le=24, description="From the start."), BeforeValidator(not_a_yes_no)] = (
        None
    )
    notes: Annotated[str | None, Field(description="Replace the old (customer-visible on invoices).")] = None
    work_type: Annotated[NameOrId, Field(description='Name, e.g. "Remote Support".')] = None
    billable_option: BillableOption | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in type(self).model_fields if name != "entry_id")


class TimeEntryUpdated(BaseModel):
    tenant: str
    time_entry_id: int
    ticket_id: int | None = None
    patched: bool
    changes: list[FieldChange]
    hours: float | None = None
    status: str | None = None
    notice: str = untrusted_notice("changes[] of notes")


@dataclass(frozen=True)
class _CorrectedPeriod:
    start: datetime
    end: datetime | None
    hours: float | None


@dataclass(frozen=True)
class _EntryField:
    """A field update_time_entry changes: its ConnectWise path, how an entry shows it (for before -> after) and
    whether an entry holds the value a patch sets."""

    path: str
    shown: Callable[[TimeEntry], str | None]
    holds: Callable[[TimeEntry, Any], bool]


def _same_moment(stored: datetime | None, sent: str) -> bool:
    moment = read_moment(sent)
    return stored is not None and moment is not None and abs(stored - moment) <= STORED_TIME_TOLERANCE


_FIELDS = {
    field.path: field
    for field in (
        _EntryField(
            "timeStart",
            lambda e: utc_text(e.time_start) if e.time_start else None,
            lambda e, v: _same_moment(e.time_start, v),
        ),
        _EntryField(
            "timeEnd", lambda e: utc_text(e.time_end) if e.time_end else None, lambda e, v: _same_moment(e.time_end, v)
        ),
        _EntryField("notes", lambda e: e.notes, lambda e, v: same_text(e.notes, v)),
        _EntryField(
            "workType",
            lambda e: label(e.work_type) or (str(e.work_type.id) if e.work_type else None),
            lambda e, v: e.work_type is not None and e.work_type.id == v["id"],
        ),
        _EntryField("billableOption", lambda e: e.billable_option, lambda e, v: e.billable_option == v),
    )
}


def _not_found(session: TenantSession, entry_id: int) -> Refused:
    return Refused(f"There is no time entry {entry_id} in tenant {session.name}; check the id.", look=Look.LIST_TIME)


def _check_changes(changes: TimeEntryChanges) -> str | None:
    """Refuse what no entry could take, before any request; the new notes as they would be written."""
    if changes.is_empty():
        raise Refused("Nothing to change: give start, end, hours, notes, work_type or billable_option.")
    if changes.end is not None and changes.hours is not None:
        raise Refused("Give end or hours, not both.")
    if changes.start is not None and (changes.end is not None or changes.hours is not None):
        work_period(_CorrectedPeriod(changes.start, changes.end, changes.hours))
    for argument in ("start", "end"):
        if (moment := getattr(changes, argument)) is not None:
            resolve.moment(argument, moment)
    if changes.hours is not None and not 0 < changes.hours <= 24:
        raise Refused(f"hours must be more than 0 and at most 24; got {changes.hours:g}.")
    if changes.work_type is not None:
        resolve.name_or_id("work_type", changes.work_type)
    if changes.notes is None:
        return None
    notes = cleaned("notes", changes.notes)
    if notes is None:
        raise Refused("notes is empty; give the new notes, or leave notes out.")
    return notes


def _refuse_if_locked(entry: TimeEntry) -> None:
    """Refused when the entry's status is past what its member may change (API.md "Time entry status")."""
    status = entry.status
    if status is None or status in EDITABLE_TIME_ENTRY_STATUSES:
        return
    if status in _BILLED_STATUSES:
        why = "it is billed or written off, so it is corrected on the invoice in ConnectWise"
    else:
        why = "it is in approval, so it is corrected through ConnectWise's time sheet approval (its approver rejects it back)"
    raise Refused(
        f"Time entry {entry.id} is {status}: {why}, not by an edit. It was not changed; only "
        f"{', '.join(EDITABLE_TIME_ENTRY_STATUSES)} entries can be edited.",
        look=Look.LIST_TIME,
    )


async def _planned(
    session: TenantSession, entry: TimeEntry, changes: TimeEntryChanges, notes: str | None
) -> list[dict]:
    """The replace operations of the fields whose value changes: the times checked as create_time_entry checks
    them, the work type resolved."""
    planned: dict[str, Any] = {}
    if changes.start is not None or changes.end is not None or changes.hours is not None:
        start = changes.start or entry.time_start
        end = changes.end if changes.hours is None else None
        if end is None and changes.hours is None:
            end = entry.time_end
        if start is None or (end is None and changes.hours is None):
            raise Refused(f"Time entry {entry.id} shows no {'start' if start is None else 'end'}; give it as well.")
        new_start, new_end = work_period(_CorrectedPeriod(start, end, changes.hours))
        planned["timeStart"], planned["timeEnd"] = utc_text(new_start), utc_text(new_end)
    if notes is not None:
        planned["notes"] = notes
    if changes.work_type is not None:
        planned["workType"] = {"id": (await resolve.work_type(session, changes.work_type)).id}
    if changes.billable_option is not None:
        planned["billableOption"] = changes.billable_option
    return [
        {"op": "replace", "path": path, "value": value}
        for path, value in planned.items()
        if not _FIELDS[path].holds(entry, value)
    ]


async def _sendable(session: TenantSession, entry: TimeEntry, operations: list[dict]) -> list[dict]:
    """The patch to send, once ConnectWise would take it: the entry still editable, its ticket taking time if
    the times change, and `billableOption` in it (ConnectWise requires it on updates)."""
    _refuse_if_locked(entry)
    paths = {operation["path"] for operation in operations}
    if paths & {"timeStart", "timeEnd"} and entry.charge_to_type in TICKET_CHARGE_TYPES and entry.charge_to_id:
        await refuse_if_time_not_allowed(session, await read_ticket(session, entry.charge_to_id))
    if "billableOption" in paths:
        return operations
    if entry.billable_option is None:
        raise Refused(
            f"Time entry {entry.id} shows no billable option, which ConnectWise needs on every update; "
            "give billable_option as well."
        )
    return [*operations, {"op": "replace", "path": "billableOption", "value": entry.billable_option}]


async def _read_entry(session: TenantSession, entry_id: int) -> TimeEntry:
    try:
        return TimeEntry.model_validate(await session.client.get(endpoints.time_entry(entry_id)))
    except NotFoundError:
        raise _not_found(session, entry_id) from None


async def update_time_entry(session: TenantSession, changes: TimeEntryChanges) -> TimeEntryUpdated:
    entry_id = changes.entry_id
    notes = _check_changes(changes)
    before = await _read_entry(session, entry_id)
    operations = await _planned(session, before, changes, notes)
    earlier = write_recovery.earlier_attempt()
    if not operations:
        if earlier is not None:  # a repeat of a call whose outcome was unknown: that call made the change
            earlier.found = before.model_dump(by_alias=True)
        return _updated(session, before, before, [], patched=False)
    operations = await _sendable(session, before, operations)
    after = await _patched(session, entry_id, operations)
    return _updated(session, before, after, operations, patched=True)


async def _patched(session: TenantSession, entry_id: int, operations: list[dict]) -> TimeEntry:
    """The entry once ConnectWise shows the patch applied; a refusal, a failure or an unknown outcome if not."""
    where = f"time entry {entry_id} (tenant {session.name})"

    def unknown(not_shown: write_recovery.NotShown) -> str:
        return (
            f"It is unknown whether {where} was changed: {not_shown.what_happened}, and the entry read back still "
            f"shows the old {', '.join(not_shown.paths)}; ConnectWise may still apply it. Check it before sending "
            "the change again (a retry of this same call reads the entry first and sends only what is still "
            "different)."
        )

    def not_applied(not_shown: write_recovery.NotShown) -> str:
        shown = "the entry read back" if not_shown.read_back else "its answer"
        return (
            f"The change to {where} was not applied as asked: ConnectWise accepted it, but {shown} shows the old "
            f"{', '.join(not_shown.paths)}. Read the entry before trying again."
        )

    patch = write_recovery.PlannedPatch(
        endpoints.time_entry(entry_id),
        operations,
        read=TimeEntry.model_validate,
        shows=lambda entry, operation: _FIELDS[operation["path"]].holds(entry, operation["value"]),
        record="the entry",
        where=where,
        look=Look.LIST_TIME,
        unreadable=lambda why: f"reading it back failed too ({why}). Check it before sending the change again.",
        unknown=unknown,
        not_applied=not_applied,
    )
    try:
        return await write_recovery.patch_checked(session, patch)
    except NotFoundError:
        raise _not_found(session, entry_id) from None


def _updated(
    session: TenantSession, before: TimeEntry, after: TimeEntry, operations: list[dict], *, patched: bool
) -> TimeEntryUpdated:
    changes = [
        FieldChange(field=path, before=field.shown(before), after=field.shown(after))
        for operation in operations
        if (field := _FIELDS[(path := operation["path"])]).shown(before) != field.shown(after)
    ]
    if before.actual_hours != after.actual_hours:
        changes.append(FieldChange(field="actualHours", before=before.actual_hours, after=after.actual_hours))
    on_ticket = after.charge_to_type in TICKET_CHARGE_TYPES
    return TimeEntryUpdated(
        tenant=session.name,
        time_entry_id=after.id,
        ticket_id=after.charge_to_id if on_ticket else None,
        patched=patched,
        changes=changes,
        hours=_hours(after),
        status=after.status,
    )
