"""Monitoring alerts into tickets: one ticket per (tenant, source, alert id), decided when a report arrives.

The alert's key (`alert_key`) is kept on its ticket (`externalXRef`: staff see it, customers do not), so the
ticket is found in ConnectWise, by any process, before and after a restart. Per key, reports take turns (a
lock of the state store: in this process, or in Redis for every replica, where each write under it is checked
against it just before it is sent), and each is one of:

- raised, no ticket open for the key: a ticket is created on the tenant's alert board (`[tenants.X.alerts]`),
  priority from the severity, the device attached, notifications off (`created`); when an earlier ticket of
  the key was closed, the new one names it.
- raised, ticket open: a repeat. Repeats are counted and written as one internal note per `coalesce_minutes`
  (`noted`), else only counted (`coalesced`).
- raised, ticket auto-closed (in `close_status`) less than `reopen_hours` ago: reopened to `status` with a
  note (`reopened`). After `flap_limit` close/reopen cycles within an hour the ticket is told, once, that the
  alert is flapping, and is no longer closed automatically.
- cleared, ticket open: an internal note, then `close_status` (`closed`) - unless a person worked it (time
  logged on it, or its status is no longer the one this server set) or the alert is flapping: then only the
  note (`kept_open`, with the reason).
- cleared with no open ticket, or a severity below `min_severity`: nothing written (`skipped`).

Times are the report's `occurred_at` (default: now), so that a monitor's own clock orders its reports. Writes
go through the shared write paths: the ticket POST through write recovery (found by its key if the answer is
lost), notes as add_ticket_note writes them, status changes as update_ticket makes them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.config import AlertsConfig
from mcp_server_connectwise.config.models import SEVERITIES, Severity
from mcp_server_connectwise.connectwise import ConnectWiseError, endpoints
from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise.models import BoardStatus, Ticket
from mcp_server_connectwise.connectwise.times import utc_text
from mcp_server_connectwise.services import catalog, clock, notes, resolve, updates, write_recovery
from mcp_server_connectwise.services.arguments import RecordName, When, any_case, written_text
from mcp_server_connectwise.services.companies import company as resolve_company
from mcp_server_connectwise.services.companies import described
from mcp_server_connectwise.services.errors import Failed, Look, OutcomeUnknown, Refused, ServiceError
from mcp_server_connectwise.services.notes import MAX_NOTE_CHARS, NoteRequest
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.ticket_devices import attach_to_new_ticket, find_configuration
from mcp_server_connectwise.services.time_entries import ticket_time_entries
from mcp_server_connectwise.services.updates import MAX_SUMMARY_CHARS, TicketChanges, summary_text
from mcp_server_connectwise.services.write_recovery import PlannedWrite, entered_since
from mcp_server_connectwise.state.alerts import AlertKeyState
from mcp_server_connectwise.state.errors import LockLost, StateUnavailable
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

T = TypeVar("T")
_AlertState = Literal["raised", "cleared"]
AlertState = Annotated[_AlertState, BeforeValidator(any_case(_AlertState))]
SeverityName = Annotated[Severity, BeforeValidator(any_case(Severity))]
Outcome = Literal["created", "noted", "coalesced", "closed", "kept_open", "reopened", "skipped"]

KEY_MAX_CHARS = 100  # externalXRef's limit (API.md)
# A key of these characters goes on the ticket as written; any other is hashed (conditions must quote it).
_PLAIN_KEY = re.compile(r"[\w .:/@#+=-]+")
_SOURCE = r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$"
# Cycles within this long of each other count towards flapping.
FLAP_WINDOW = timedelta(hours=1)
# A report's time may be ahead of ours by this much (clocks differ); further ahead is refused.
CLOCK_SKEW = timedelta(minutes=5)
_TICKET_FIELDS = ("id", "summary", "status", "closedFlag", "closedDate", "externalXRef", "_info/dateEntered")


def alert_key(source: str, alert_id: str) -> str:
    """How the alert is known on its ticket: `source:alert_id` when that is plain text of at most 100
    characters, else `source:` and the first 40 hex digits of its SHA-256 (deterministic, so every process and
    every restart computes the same key)."""
    key = f"{source}:{alert_id}"
    if len(key) <= KEY_MAX_CHARS and _PLAIN_KEY.fullmatch(key):
        return key
    return f"{source}:{hashlib.sha256(key.encode('utf-8')).hexdigest()[:40]}"


class AlertReport(BaseModel):
    """One report of a monitoring alert."""

    source: Annotated[str, Field(min_length=1, max_length=50, pattern=_SOURCE, description='e.g. "datto-rmm".')]
    alert_id: Annotated[str, Field(min_length=1, max_length=200, description="The same for every report of it.")]
    state: AlertState
    severity: SeverityName
    company: Annotated[RecordName, Field(description="Identifier or name.")]
    summary: Annotated[str, Field(min_length=1, max_length=MAX_SUMMARY_CHARS)]
    details: Annotated[str | None, Field(max_length=MAX_NOTE_CHARS, description="The ticket's description.")] = None
    device: Annotated[str | None, Field(description="Configuration name or serial number.")] = None
    occurred_at: When = None


class AlertHandled(BaseModel):
    tenant: str
    outcome: Outcome
    ticket_id: int | None = None
    key: str  # the alert's key on its ticket (externalXRef)
    reason: str | None = None  # why it was skipped or kept open
    earlier_ticket_id: int | None = None  # the closed ticket a new one follows
    repeats: int | None = None  # since the last note
    note_id: int | None = None
    device_not_attached: UntrustedText | None = None  # why, naming the company's devices
    notice: str = untrusted_notice("device_not_attached")


@dataclass(frozen=True)
class _Setup:
    """The tenant's alert config as ConnectWise ids."""

    config: AlertsConfig
    board_id: int
    board_name: str | None
    status: BoardStatus
    close_status: BoardStatus
    on_board: dict[str, int]  # type / subType / item -> id
    priorities: dict[Severity, int]  # severity -> priority id


def _alerts_config(session: TenantSession) -> AlertsConfig:
    config = session.config.alerts
    if config is None:
        raise Refused(
            f"Tenant {session.name} takes no alerts: add a [tenants.{session.name}.alerts] table with board, status "
            "and close_status to the config (see tenants.example.toml) and restart the server."
        )
    return config


async def _setup(session: TenantSession, config: AlertsConfig) -> _Setup:
    """The config's names as ids, from the cached catalogs; a name ConnectWise lacks fails naming its key."""
    table = f"[tenants.{session.name}.alerts]"

    async def named(key: str, find: Awaitable[T]) -> T:
        try:
            return await find
        except Refused as refused:
            raise Failed(f"The alert config is wrong: {table} {key}: {refused}") from None

    board = await named("board", resolve.board(session, config.board))
    status = await named("status", resolve.status_on_board(session, board.id, board.name, config.status))
    close = await named("close_status", resolve.status_on_board(session, board.id, board.name, config.close_status))
    if not close.closed_status:
        raise Failed(
            f"The alert config is wrong: {table} close_status {close.name!r} is not a closed status of board "
            f"{board.name}; name one of its closed statuses."
        )
    if status.closed_status:
        raise Failed(f"The alert config is wrong: {table} status {status.name!r} is a closed status; name an open one.")
    on_board = {}
    for key, path, kind in (
        ("type", "type", catalog.board_types),
        ("subtype", "subType", catalog.board_subtypes),
        ("item", "item", catalog.board_items),
    ):
        if (value := getattr(config, key)) is not None:
            found = await named(key, resolve.board_named(session, kind(board.id), key, board.name, value))
            on_board[path] = found.id
    priorities = {
        severity: (await named(f"priority.{severity}", resolve.priority(session, name))).id
        for severity, name in config.priority.items()
    }
    return _Setup(config, board.id, board.name, status, close, on_board, priorities)


async def check_alerts_config(session: TenantSession) -> str | None:
    """The tenant's alert config resolved against its ConnectWise, as a few words for the log (None: the tenant
    takes no alerts); `Failed` naming the key whose name ConnectWise lacks."""
    if session.config.alerts is None:
        return None
    setup = await _setup(session, session.config.alerts)
    return f"board {setup.board_name}, status {setup.status.name}, closed with {setup.close_status.name}"


async def _tickets_of(session: TenantSession, key: str) -> list[Ticket]:
    """The tickets carrying the key, newest first (ConnectWise compares text in any case: the key is matched
    exactly here)."""
    page = await session.client.get_page(
        endpoints.TICKETS,
        conditions=cw.eq("externalXRef", key),
        fields=_TICKET_FIELDS,
        order_by="id desc",
        page_size=10,
    )
    return [ticket for item in page.items if (ticket := Ticket.model_validate(item)).external_x_ref == key]


def _at(report: AlertReport) -> datetime:
    now = clock.now()
    if report.occurred_at is None:
        # A repeat of a call whose outcome is unknown keeps that call's time: the notes it may have written
        # carry it, and are found again (write recovery matches them by text).
        earlier = write_recovery.earlier_attempt()
        return earlier.started.astimezone(timezone.utc).replace(microsecond=0) if earlier else now
    at = resolve.moment("occurred_at", report.occurred_at).astimezone(timezone.utc)
    if at > now + CLOCK_SKEW:
        raise Refused(f"occurred_at {report.occurred_at.isoformat()} is in the future; send the time the alert fired.")
    return at


async def _note(session: TenantSession, ticket_id: int, text: str) -> int:
    added = await notes.add_ticket_note(session, NoteRequest(ticket_id=ticket_id, text=text, note_type="internal"))
    return added.note_id


async def _set_status(session: TenantSession, ticket_id: int, status: BoardStatus) -> None:
    await updates.update_ticket(session, TicketChanges(ticket_id=ticket_id, status=status.id))


async def _second_write(session: TenantSession, ticket_id: int, done: str, write: Awaitable[T]) -> T:
    """The second write of a two-write change (a note and a status): the first is in ConnectWise, so a failure
    now leaves the change half done, an unknown outcome - and a retry of the same report finishes it."""
    try:
        return await write
    except (ServiceError, ConnectWiseError) as failure:
        raise OutcomeUnknown(
            f"Ticket {ticket_id} (tenant {session.name}) was only partly {done}: the first write went through, the "
            f"second failed ({failure}). Send the same report again to finish it.",
            look=Look.READ_TICKET,
        ) from None


def _when(moment: datetime) -> str:
    return utc_text(moment)


async def report_alert(session: TenantSession, report: AlertReport) -> AlertHandled:
    config = _alerts_config(session)
    source, alert_id = report.source.strip(), written_text("alert_id", report.alert_id).strip()
    if not alert_id:
        raise Refused("alert_id is empty; send the alert's id at its source.")
    key = alert_key(source, alert_id)
    summary = summary_text(report.summary)
    details = written_text("details", report.details).strip() if report.details else None
    at = _at(report)
    # A clear always counts: monitors often send recoveries at a lower severity than the alert had.
    if report.state == "raised" and SEVERITIES.index(report.severity) > SEVERITIES.index(config.min_severity):
        return AlertHandled(
            tenant=session.name,
            outcome="skipped",
            key=key,
            reason=f"severity {report.severity} is below the tenant's min_severity {config.min_severity}",
        )
    setup = await _setup(session, config)
    try:
        async with session.alert_keys.locked(key) as state:
            tickets = await _tickets_of(session, key)
            latest = tickets[0] if tickets else None
            if report.state == "cleared":
                return await _cleared(session, setup, state, key, latest, at)
            if latest is not None and not latest.closed_flag:
                return await _repeated(session, setup, state, key, latest, at)
            if latest is not None and _reopenable(setup, latest, at):
                return await _reopen(session, setup, state, key, latest, at)
            return await _create(session, setup, state, key, report, summary, details, at, earlier=latest)
    except StateUnavailable as exc:
        raise Failed(
            f"Alert {key} was not handled: {exc}, and without it another server could open a second ticket for "
            "the alert; send it again once the store answers."
        ) from None
    except LockLost as exc:
        raise Failed(
            f"Alert {key} was stopped before its next write: {exc}, so another server may be handling it now; "
            f"send it again to see where it stands."
        ) from None


def _reopenable(setup: _Setup, ticket: Ticket, at: datetime) -> bool:
    """Whether a closed ticket of the key was auto-closed (it is in close_status) within the reopen window
    (`reopen_hours` 0: never)."""
    closed = ticket.closed_date
    return (
        setup.config.reopen_hours > 0
        and ticket.status is not None
        and ticket.status.id == setup.close_status.id
        and closed is not None
        and at - closed <= timedelta(hours=setup.config.reopen_hours)
    )


async def _repeated(
    session: TenantSession, setup: _Setup, state: AlertKeyState, key: str, ticket: Ticket, at: datetime
) -> AlertHandled:
    state.repeated(at)
    if state.last_note is None:  # first seen by this process (a restart): the count starts now
        state.last_note = at
    interval = timedelta(minutes=setup.config.coalesce_minutes)
    if at - state.last_note < interval:
        return AlertHandled(
            tenant=session.name, outcome="coalesced", ticket_id=ticket.id, key=key, repeats=state.repeats
        )
    repeats, first, last = state.repeats, state.first_repeat or at, state.last_repeat or at
    note_id = await _note(
        session,
        ticket.id,
        f"Alert {key} is still raised: reported {repeats} more time{'s' if repeats != 1 else ''} "
        f"between {_when(first)} and {_when(last)}.",
    )
    state.noted(at)
    return AlertHandled(
        tenant=session.name, outcome="noted", ticket_id=ticket.id, key=key, repeats=repeats, note_id=note_id
    )


async def _worked_by_a_person(session: TenantSession, setup: _Setup, ticket: Ticket) -> str | None:
    """Why a person has worked the ticket, or None: time logged on it, or a status this server did not set."""
    if ticket.status is None or ticket.status.id != setup.status.id:
        shown = ticket.status.name if ticket.status and ticket.status.name else "another status"
        return f"a person moved it to {shown}, so it is left for them to close"
    logged = await session.client.count(endpoints.TIME_ENTRIES, conditions=ticket_time_entries(ticket.id))
    if logged:
        return f"{logged} time entr{'y is' if logged == 1 else 'ies are'} logged on it, so it is left for a person to close"
    return None


async def _cleared(
    session: TenantSession, setup: _Setup, state: AlertKeyState, key: str, ticket: Ticket | None, at: datetime
) -> AlertHandled:
    if ticket is None or ticket.closed_flag:
        return AlertHandled(
            tenant=session.name,
            outcome="skipped",
            ticket_id=ticket.id if ticket else None,
            key=key,
            reason="no open ticket has this alert",
        )
    kept_because = (
        "the alert is flapping, so it is no longer closed automatically"
        if state.flapping_noted
        else await _worked_by_a_person(session, setup, ticket)
    )
    repeats = f" It was reported {state.repeats} more times since the last note." if state.repeats else ""
    action = f"left open: {kept_because}" if kept_because else f"moved to {setup.close_status.name}"
    note_id = await _note(session, ticket.id, f"Alert {key} cleared at {_when(at)}; the ticket is {action}.{repeats}")
    state.noted(at)
    if kept_because:
        return AlertHandled(
            tenant=session.name, outcome="kept_open", ticket_id=ticket.id, key=key, reason=kept_because, note_id=note_id
        )
    await _second_write(session, ticket.id, "closed", _set_status(session, ticket.id, setup.close_status))
    state.cycles.append(at)
    return AlertHandled(tenant=session.name, outcome="closed", ticket_id=ticket.id, key=key, note_id=note_id)


async def _reopen(
    session: TenantSession, setup: _Setup, state: AlertKeyState, key: str, ticket: Ticket, at: datetime
) -> AlertHandled:
    cycles = [moment for moment in state.cycles if at - moment <= FLAP_WINDOW]
    flapping = len(cycles) >= setup.config.flap_limit and not state.flapping_noted
    text = f"Alert {key} raised again at {_when(at)}; the ticket is reopened."
    if flapping:
        text += (
            f" The alert is flapping: closed and reopened {len(cycles)} times within an hour, so it will no longer"
            " be closed automatically; close it by hand once it is stable."
        )
    # The note first, as on a clear: a retry after a failed status change finds the ticket still closed, and
    # the note already there (found by its text), so it only reopens it.
    note_id = await _note(session, ticket.id, text)
    await _second_write(session, ticket.id, "reopened", _set_status(session, ticket.id, setup.status))
    state.flapping_noted = state.flapping_noted or flapping
    state.noted(at)
    return AlertHandled(
        tenant=session.name,
        outcome="reopened",
        ticket_id=ticket.id,
        key=key,
        note_id=note_id,
        reason="flapping: no longer closed automatically" if flapping else None,
    )


async def _create(
    session: TenantSession,
    setup: _Setup,
    state: AlertKeyState,
    key: str,
    report: AlertReport,
    summary: str,
    details: str | None,
    at: datetime,
    *,
    earlier: Ticket | None,
) -> AlertHandled:
    company = await resolve_company(session, report.company)
    device, device_not_attached = None, None
    if report.device:
        try:
            device = await find_configuration(session, company, report.device)
        except Refused as refused:  # the alert still gets its ticket; the answer says why the device is missing
            device_not_attached = str(refused)
    body: dict = {
        "summary": summary,
        "company": {"id": company.id},
        "board": {"id": setup.board_id},
        "status": {"id": setup.status.id},
        **{path: {"id": record_id} for path, record_id in setup.on_board.items()},
        "externalXRef": key,
        "processNotifications": False,  # a machine-made ticket emails nobody
    }
    if report.severity in setup.priorities:
        body["priority"] = {"id": setup.priorities[report.severity]}
    if details:
        body["initialDescription"] = details
    first_note = f"Opened by alert {key} ({report.severity}) at {_when(at)}."
    if earlier is not None:
        first_note += f" It recurred after ticket {earlier.id} was closed."
    body["initialInternalAnalysis"] = first_note

    async def find(since: datetime) -> list[dict]:
        page = await session.client.get_page(
            endpoints.TICKETS, conditions=cw.eq("externalXRef", key), fields=_TICKET_FIELDS, order_by="id desc"
        )
        return [
            item
            for item in page.items
            if item.get("externalXRef") == key and entered_since(item.get("_info") or {}, "dateEntered", since)
        ]

    write = PlannedWrite(
        "ticket",
        endpoints.TICKETS,
        body,
        f"for alert {key} (company {described(company)})",
        check="the tickets of the alert board",
        find=find,
        look=Look.FIND_TICKET,
    )
    created = Ticket.model_validate(await write_recovery.create_once(session, write))
    if device is not None:
        device_not_attached = await attach_to_new_ticket(session, created.id, device)
    state.noted(at)
    state.cycles.clear()
    state.flapping_noted = False
    return AlertHandled(
        tenant=session.name,
        outcome="created",
        ticket_id=created.id,
        key=key,
        earlier_ticket_id=earlier.id if earlier is not None else None,
        device_not_attached=device_not_attached,
    )
