"""Logging time against a ticket, validated before anything is sent."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.connectwise.conditions import Expr, and_, eq, ge, le, or_
from mcp_server_connectwise.connectwise.models import Ticket, TimeEntry, label, read_moment
from mcp_server_connectwise.connectwise.times import utc_text
from mcp_server_connectwise.services import catalog, clock, resolve
from mcp_server_connectwise.services.arguments import TicketId, any_case, iso_text, not_a_yes_no, written_text
from mcp_server_connectwise.services.errors import Look, Refused
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.tickets import read_ticket
from mcp_server_connectwise.services.write_recovery import PlannedWrite, create_once, entered_since, same_text

_BillableOption = Literal["Billable", "DoNotBill", "NoCharge", "NoDefault"]
# The chargeToType of an entry charged to a ticket (API.md: a ticket's time entries).
TICKET_CHARGE_TYPES = ("ServiceTicket", "ProjectTicket")
BillableOption = Annotated[_BillableOption, BeforeValidator(any_case(_BillableOption))]
MAX_DURATION = timedelta(hours=24)
# How far a stored start or end may be from the one sent and still be the entry whose answer was lost (or an
# entry already logged): ConnectWise may keep times to the minute.
STORED_TIME_TOLERANCE = timedelta(seconds=60)
# Time is logged for work done or begun: a start later than this past the server's clock is a mistake (a wrong
# date or time zone), less than this is clocks that disagree.
CLOCK_SKEW = timedelta(minutes=5)
# The entries a member logged on one ticket starting within two minutes of each other: 50 is far beyond that.
_MAX_ENTRIES_STARTING_NEAR = 50


class TimeEntryRequest(BaseModel):
    ticket_id: TicketId
    start: Annotated[
        datetime,
        BeforeValidator(iso_text),
    ]
    end: Annotated[datetime | None, BeforeValidator(iso_text)] = None
    hours: Annotated[
        float | None, Field(gt=0, le=24, description="Worked from start."), BeforeValidator(not_a_yes_no)
    ] = None
    minutes: Annotated[
        float | None, Field(gt=0, le=24 * 60, description="Instead of hours."), BeforeValidator(not_a_yes_no)
    ] = None
    notes: Annotated[str | None, Field(description="What was done (customer-visible on invoices).")] = None
    member: Annotated[
        str | None, Field(description="Member identifier; default: the caller's member, else the tenant's.")
    ] = None
    work_type: Annotated[str | None, Field(description='Name, e.g. "Remote Support".')] = None
    billable_option: BillableOption | None = None
    internal_notes: Annotated[str | None, Field(description="Staff only.")] = None
    allow_duplicate: bool = False


class TimeEntryCreated(BaseModel):
    tenant: str
    time_entry_id: int
    ticket_id: int
    member: str | None = None
    start: datetime
    end: datetime
    hours: float
    work_type: str | None = None
    billable_option: str | None = None


class Period(Protocol):
    """When some work was done: a start, and an end or a number of hours (a new entry, or a corrected one)."""

    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime | None: ...
    @property
    def hours(self) -> float | None: ...


def ticket_time_entries(ticket_id: int) -> Expr | None:
    """The conditions of a ticket's time entries, as API.md gives them."""
    return and_(or_(*(eq("chargeToType", kind) for kind in TICKET_CHARGE_TYPES)), eq("chargeToId", ticket_id))


def work_period(request: Period, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Start and end in UTC at whole seconds, or a refusal saying what is wrong with the times: each needs a
    time zone and must fall within the dates ConnectWise stores (`resolve.moment`), and the work must have
    begun by `now` (default: the clock), give or take `CLOCK_SKEW`."""
    resolve.moment("start", request.start)
    if request.end is not None:
        resolve.moment("end", request.end)
    if (request.end is None) == (request.hours is None):
        raise Refused("Give either end or hours (not both, not neither).")
    if request.hours is not None:
        if not 0 < request.hours <= 24:
            raise Refused(f"hours must be more than 0 and at most 24; got {request.hours:g}.")
        try:
            ends = request.start.astimezone(timezone.utc) + timedelta(hours=request.hours)
        except OverflowError:
            ends = None
        if ends is None or ends > resolve.LATEST:
            raise Refused(
                f"start {request.start.isoformat()} plus {request.hours:g} hours ends after {resolve.LATEST:%Y-%m-%d}, "
                "the last date ConnectWise can store; check start."
            )
    start = request.start.astimezone(timezone.utc).replace(microsecond=0)
    if request.end is not None:
        end = request.end.astimezone(timezone.utc).replace(microsecond=0)
    else:
        assert request.hours is not None  # exactly one of end and hours is given: refused above otherwise
        end = (start + timedelta(hours=request.hours)).replace(microsecond=0)
    if end <= start:
        raise Refused(f"end ({utc_text(end)}) must be after start ({utc_text(start)}).")
    if end - start > MAX_DURATION:
        raise Refused("A time entry can cover at most 24 hours; split longer work into several entries.")
    now = (now or clock.now()).astimezone(timezone.utc).replace(microsecond=0)
    if start > now + CLOCK_SKEW:
        raise Refused(
            f"start ({utc_text(start)}) is in the future (it is now {utc_text(now)}); time is logged for work "
            "already begun, so check the date and the time zone."
        )
    return start, end


def cleaned(argument: str, text: str | None) -> str | None:
    """Text to write as `written_text` makes it, without surrounding whitespace; None when nothing is left."""
    text = written_text(argument, text).strip() if text else None
    return text or None


def _in_hours(request: TimeEntryRequest) -> TimeEntryRequest:
    """The request with `minutes` (which models reach for) given as the `hours` the checks speak of."""
    given = [name for name in ("end", "hours", "minutes") if getattr(request, name) is not None]
    if len(given) != 1:
        raise Refused("Give one of end, hours or minutes" + (f" (not {' and '.join(given)})." if given else "."))
    if request.minutes is None:
        return request
    return request.model_copy(update={"hours": request.minutes / 60, "minutes": None})


async def refuse_if_time_not_allowed(session: TenantSession, ticket: Ticket) -> None:
    """Refused when the ticket's status does not allow time entries (its board's cached statuses say)."""
    if ticket.board is None or ticket.board.id is None or ticket.status is None:
        return
    status_id = ticket.status.id
    status, _ = await session.catalog.find(catalog.board_statuses(ticket.board.id), lambda s: s.id == status_id)
    if status is not None and status.time_entry_not_allowed:
        raise Refused(
            f"Ticket {ticket.id} is in status {status.name!r}, which does not allow time entries on board "
            f"{ticket.board.name}; move it to a status that allows time first.",
            look=Look.BOARD_STATUSES,
        )


async def create_time_entry(session: TenantSession, request: TimeEntryRequest) -> TimeEntryCreated:
    start, end = work_period(_in_hours(request))
    for argument, value in (("member", request.member), ("work_type", request.work_type)):
        if value is not None:
            resolve.name_or_id(argument, value)
    notes, internal_notes = cleaned("notes", request.notes), cleaned("internal_notes", request.internal_notes)
    member_name = request.member if request.member is not None else session.member
    if member_name is None:
        raise Refused(
            f"Tenant {session.name} has no default member; give member (the ConnectWise member identifier to log the time for)."
        )
    await refuse_if_time_not_allowed(session, await read_ticket(session, request.ticket_id))
    member = await resolve.member(session, member_name)
    work_type = await resolve.work_type(session, request.work_type) if request.work_type is not None else None
    body = {
        "chargeToType": "ServiceTicket",
        "chargeToId": request.ticket_id,
        "member": {"id": member.id},
        "timeStart": utc_text(start),
        "timeEnd": utc_text(end),
        "notes": notes,
        "internalNotes": internal_notes,
        "workType": {"id": work_type.id} if work_type else None,
        "billableOption": request.billable_option,
    }
    body = {key: value for key, value in body.items() if value is not None}
    if not request.allow_duplicate:
        await _refuse_a_duplicate(session, body, member.identifier or str(member.id), start, end)

    async def find(since: datetime) -> list[dict]:
        return await _time_entries_like(session, body, start, end, since)

    write = PlannedWrite(
        "time entry",
        endpoints.TIME_ENTRIES,
        body,
        f"on ticket {request.ticket_id}",
        check="the ticket's time entries",
        find=find,
    )
    created = TimeEntry.model_validate(await create_once(session, write))
    return TimeEntryCreated(
        tenant=session.name,
        time_entry_id=created.id,
        ticket_id=request.ticket_id,
        member=member.identifier,
        start=start,
        end=end,
        hours=created.actual_hours
        if created.actual_hours is not None
        else round((end - start).total_seconds() / 3600, 2),
        work_type=label(created.work_type) or (work_type.name if work_type else None),
        billable_option=created.billable_option or request.billable_option,
    )


async def _entries_starting_near(session: TenantSession, body: dict, start: datetime) -> list[dict]:
    """The ticket's entries for the member of `body` starting within `STORED_TIME_TOLERANCE` of `start`,
    newest first: one request."""
    conditions = and_(
        eq("chargeToType", body["chargeToType"]),
        eq("chargeToId", body["chargeToId"]),
        eq("member/id", body["member"]["id"]),
        ge("timeStart", start - STORED_TIME_TOLERANCE),
        le("timeStart", start + STORED_TIME_TOLERANCE),
    )
    return await session.client.list_all(
        endpoints.TIME_ENTRIES, conditions=conditions, order_by="id desc", limit=_MAX_ENTRIES_STARTING_NEAR
    )


async def _refuse_a_duplicate(session: TenantSession, body: dict, member: str, start: datetime, end: datetime) -> None:
    """Refused when the ticket already has an entry for the same member, start and end (each within
    `STORED_TIME_TOLERANCE`): the same work logged twice is billed twice."""
    same = sorted(entry["id"] for entry in await _entries_starting_near(session, body, start) if _ends_at(entry, end))
    if same:
        others = f" (and {len(same) - 1} more)" if len(same) > 1 else ""
        raise Refused(
            f"Ticket {body['chargeToId']} already has time entry {same[0]}{others} for {member} from "
            f"{utc_text(start)} to {utc_text(end)}, so this would log the same time twice; give allow_duplicate=true "
            "if it really is other work.",
            look=Look.READ_TICKET,
        )


async def _time_entries_like(
    session: TenantSession, body: dict, start: datetime, end: datetime, since: datetime
) -> list[dict]:
    """The time entries equal to `body` (same ticket, member, notes, work type and billing; start and end
    within `STORED_TIME_TOLERANCE`), entered at or after `since`, newest first."""
    entries = await _entries_starting_near(session, body, start)
    return [entry for entry in entries if _same_entry(entry, body, end) and entered_since(entry, "dateEntered", since)]


def _ends_at(entry: dict, end: datetime) -> bool:
    stored_end = read_moment(entry.get("timeEnd"))
    return stored_end is not None and abs(stored_end - end) <= STORED_TIME_TOLERANCE


def _same_entry(entry: dict, body: dict, end: datetime) -> bool:
    work_type = entry.get("workType")
    if not isinstance(work_type, dict):
        work_type = {}
    return (
        _ends_at(entry, end)
        and same_text(entry.get("notes"), body.get("notes"))
        and ("workType" not in body or work_type.get("id") == body["workType"]["id"])
        and ("billableOption" not in body or entry.get("billableOption") == body["billableOption"])
    )
