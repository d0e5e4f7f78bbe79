"""Changing a ticket: every name resolved and validated before one PATCH of the fields that change.

A bad status (or one of another board) is refused with the valid ones and nothing is sent. The PATCH
replaces whole references by id (`{"op": "replace", "path": "status", "value": {"id": 5}}`): replacing a
sub-path such as `status/name` can answer 200 without changing anything (API.md). Even so, a change is only
reported once the ticket ConnectWise answered with shows it; a PATCH left without an answer is checked by
reading the ticket back once, after `write_recovery.SETTLE_SECONDS`; still showing the old value then, its
outcome is unknown (ConnectWise may still apply it).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field
from pydantic import ValidationError as PydanticValidationError

from mcp_server_connectwise.connectwise import AmbiguousWriteError, ConnectWiseError, NotFoundError, NotJsonError
from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.connectwise.models import Reference, Ticket, label, read_moment
from mcp_server_connectwise.connectwise.times import utc_text
from mcp_server_connectwise.services import write_recovery
from mcp_server_connectwise.services import catalog, resolve
from mcp_server_connectwise.services.arguments import NameOrId, TicketId, When, not_a_yes_no
from mcp_server_connectwise.services.errors import Failed, Look, OutcomeUnknown, Refused
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.tickets import read_ticket, ticket_not_found
from mcp_server_connectwise.services.time_entries import STORED_TIME_TOLERANCE
from mcp_server_connectwise.untrusted import UntrustedText, one_line, untrusted_notice

Level = Literal["Low", "Medium", "High"]
MAX_SUMMARY_CHARS = 100  # ConnectWise's limit on a ticket summary


class TicketChanges(BaseModel):
    """What to change on ticket `ticket_id`; None leaves a field as it is."""

    ticket_id: TicketId
    status: Annotated[NameOrId, Field(description='Status name on the ticket\'s board (or the new board), e.g. "Waiting on Client".')] = None
    priority: Annotated[NameOrId, Field(description="Priority name.")] = None
    board: Annotated[NameOrId, Field(description="Board name, to move the ticket; without status it gets the board's default status.")] = None
    owner: Annotated[NameOrId, Field(description='Owner: member identifier, e.g. "jsmith".')] = None
    summary: Annotated[str | None, Field(max_length=100, description="New summary (at most 100 characters).")] = None
    type: Annotated[NameOrId, Field(description="Type name on the board.")] = None
    subtype: Annotated[NameOrId, Field(description="Subtype name on the board.")] = None
    item: Annotated[NameOrId, Field(description="Item name on the board.")] = None
    severity: Level | None = None
    impact: Level | None = None
    required_date: When = None
    budget_hours: Annotated[float | None, Field(ge=0, description="Budgeted hours."), BeforeValidator(not_a_yes_no)] = None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in type(self).model_fields if name != "ticket_id")


class FieldChange(BaseModel):
    field: str
    before: float | UntrustedText | None = None
    after: float | UntrustedText | None = None


class TicketUpdated(BaseModel):
    tenant: str
    ticket_id: int
    patched: bool = Field(description="False when the ticket already had every value asked for: nothing was sent.")
    changes: list[FieldChange] = Field(description="Each changed field, before -> after.")
    notice: str = untrusted_notice("changes[] of summary")


def _ref_name(reference: Reference | None) -> str | None:
    """A reference as before -> after shows it: its label, else its id."""
    return None if reference is None else label(reference) or str(reference.id)


# ConnectWise patch path -> how the ticket shows that field, for before -> after.
_SHOWN: dict[str, Any] = {
    "board": lambda t: _ref_name(t.board),
    "status": lambda t: _ref_name(t.status),
    "priority": lambda t: _ref_name(t.priority),
    "owner": lambda t: t.owner.identifier if t.owner and t.owner.identifier else _ref_name(t.owner),
    "type": lambda t: _ref_name(t.type),
    "subType": lambda t: _ref_name(t.sub_type),
    "item": lambda t: _ref_name(t.item),
    "summary": lambda t: t.summary,
    "severity": lambda t: t.severity,
    "impact": lambda t: t.impact,
    "requiredDate": lambda t: utc_text(t.required_date) if t.required_date else None,
    "budgetHours": lambda t: t.budget_hours,
}


# The patch paths whose value is a reference, compared by id; any other is compared by value.
_REFERENCE_ATTRIBUTES: dict[str, str] = {
    "board": "board", "status": "status", "priority": "priority", "owner": "owner", "type": "type",
    "subType": "sub_type", "item": "item",
}


def _shows(ticket: Ticket, operation: dict) -> bool:
    """Whether `ticket` has the value the patch `operation` sets."""
    path, value = operation["path"], operation["value"]
    if path in _REFERENCE_ATTRIBUTES:
        reference = getattr(ticket, _REFERENCE_ATTRIBUTES[path])
        return reference is not None and reference.id == value["id"]
    if path == "budgetHours":
        # ConnectWise may keep hours to two decimals.
        return ticket.budget_hours is not None and math.isclose(ticket.budget_hours, value, abs_tol=0.005)
    if path == "requiredDate":
        return _same_moment(ticket.required_date, value)
    return _SHOWN[path](ticket) == value


def _same_moment(stored: object, sent: str) -> bool:
    """Whether a stored date is the one sent: ConnectWise may keep it to the minute."""
    stored_moment, sent_moment = read_moment(stored), read_moment(sent)
    return (stored_moment is not None and sent_moment is not None
            and abs(stored_moment - sent_moment) <= STORED_TIME_TOLERANCE)


@dataclass
class _Plan:
    """The JSON Patch operations for the fields that change, and how each shows after the change."""

    operations: list[dict] = field(default_factory=list)
    shown_after: dict[str, Any] = field(default_factory=dict)

    def set(self, path: str, value: Any, shown: Any, unchanged: bool) -> None:
        if not unchanged:
            self.operations.append({"op": "replace", "path": path, "value": value})
            self.shown_after[path] = shown


def _summary(text: str) -> str:
    """The summary as written: hidden characters removed, whitespace collapsed; refused unless 1 to 100 characters."""
    summary = one_line(text)
    if not 0 < len(summary) <= MAX_SUMMARY_CHARS:
        raise Refused(f"A summary must be 1 to {MAX_SUMMARY_CHARS} characters; this one has {len(summary)}.")
    return summary


# The fields that name a record (by name or id).
_NAMED = ("status", "priority", "board", "owner", "type", "subtype", "item")


def _check(changes: TicketChanges) -> None:
    """Refuse what no ticket could take, before any request: an empty or impossible name or id, a summary
    that is empty or too long once cleaned, a date without a zone or outside ConnectWise's range, negative
    or non-finite hours."""
    if changes.is_empty():
        raise Refused("Nothing to change: give at least one field, e.g. status or priority.")
    for name in _NAMED:
        value = getattr(changes, name)
        if value is not None:
            resolve.name_or_id(name, value)
    if changes.summary is not None:
        _summary(changes.summary)
    if changes.required_date is not None:
        resolve.moment("required_date", changes.required_date)
    if changes.budget_hours is not None and not (math.isfinite(changes.budget_hours) and changes.budget_hours >= 0):
        raise Refused(f"budget_hours must be a number of hours, 0 or more; got {changes.budget_hours!r}.")


async def _plan(session: TenantSession, ticket: Ticket, changes: TicketChanges) -> _Plan:
    plan = _Plan()
    board_id = ticket.board.id if ticket.board else None
    board_name = ticket.board.name if ticket.board else None
    if changes.board is not None:
        board = await resolve.board(session, changes.board)
        plan.set("board", {"id": board.id}, board.name, unchanged=board.id == board_id)
        board_id, board_name = board.id, board.name
    moved = "board" in plan.shown_after
    if board_id is None and (changes.status or changes.type or changes.subtype or changes.item):
        raise Refused(f"Ticket {ticket.id} has no board; give board as well.")
    if changes.status is not None or moved:
        if changes.status is not None:
            status = await resolve.status_on_board(session, board_id, board_name, changes.status)
        else:  # statuses belong to a board: a moved ticket needs one of its new board's
            status = await resolve.default_status(session, board_id, board_name)
        current = ticket.status.id if ticket.status else None
        plan.set("status", {"id": status.id}, status.name, unchanged=status.id == current and not moved)
    if changes.priority is not None:
        priority = await resolve.priority(session, changes.priority)
        plan.set("priority", {"id": priority.id}, priority.name,
                 unchanged=bool(ticket.priority and ticket.priority.id == priority.id))
    if changes.owner is not None:
        owner = await resolve.member(session, changes.owner)
        plan.set("owner", {"id": owner.id}, owner.identifier, unchanged=bool(ticket.owner and ticket.owner.id == owner.id))
    for path, value, kind, what, current in (
        ("type", changes.type, catalog.board_types, "type", ticket.type),
        ("subType", changes.subtype, catalog.board_subtypes, "subtype", ticket.sub_type),
        ("item", changes.item, catalog.board_items, "item", ticket.item),
    ):
        if value is not None:
            found = await resolve.board_named(session, kind(board_id), what, board_name, value)
            plan.set(path, {"id": found.id}, found.name, unchanged=bool(current and current.id == found.id and not moved))
    if changes.summary is not None:
        summary = _summary(changes.summary)
        plan.set("summary", summary, summary, unchanged=summary == ticket.summary)
    if changes.severity is not None:
        plan.set("severity", changes.severity, changes.severity, unchanged=changes.severity == ticket.severity)
    if changes.impact is not None:
        plan.set("impact", changes.impact, changes.impact, unchanged=changes.impact == ticket.impact)
    if changes.required_date is not None:
        due = utc_text(resolve.moment("required_date", changes.required_date))
        plan.set("requiredDate", due, due, unchanged=_same_moment(ticket.required_date, due))
    if changes.budget_hours is not None:
        plan.set("budgetHours", changes.budget_hours, changes.budget_hours,
                 unchanged=ticket.budget_hours == changes.budget_hours)
    return plan


async def update_ticket(session: TenantSession, changes: TicketChanges) -> TicketUpdated:
    ticket_id = changes.ticket_id
    _check(changes)
    ticket = await read_ticket(session, ticket_id)
    plan = await _plan(session, ticket, changes)
    if not plan.operations:
        return TicketUpdated(tenant=session.name, ticket_id=ticket_id, patched=False, changes=[])
    try:
        answer = await session.client.patch(endpoints.ticket(ticket_id), plan.operations)
    except NotFoundError:
        raise ticket_not_found(session, ticket_id) from None
    except AmbiguousWriteError:
        answer, what_happened, ambiguous = None, "ConnectWise gave no answer to the change", True
    except NotJsonError as failure:
        answer, ambiguous = None, False
        what_happened = f"ConnectWise answered the change (HTTP {failure.status}) with a body that is not JSON"
    else:
        ambiguous = False
        what_happened = "ConnectWise answered the change without the ticket"  # said only if so
    after = _ticket_in(answer)
    if after is not None:
        not_applied_because = "ConnectWise answered 200 without applying it (the silent false success of a PATCH)"
    else:
        if ambiguous:
            # ConnectWise may still be applying it: wait as write recovery does before reading it back.
            await asyncio.sleep(write_recovery.SETTLE_SECONDS)
        after = await _read_back(session, ticket_id, what_happened)
        not_applied_because = f"{what_happened}, and the ticket read back still shows the old value"
    not_applied = [operation["path"] for operation in plan.operations if not _shows(after, operation)]
    if not_applied:
        applied = [path for path in plan.shown_after if path not in not_applied]
        if ambiguous:
            raise OutcomeUnknown(
                f"It is unknown whether ticket {ticket_id} (tenant {session.name}) was changed as asked: "
                f"{what_happened}, and the ticket read back still shows the old value of {', '.join(not_applied)}; "
                f"ConnectWise may still apply it. {', '.join(applied) + ' did change. ' if applied else ''}"
                "Check it before sending the change again.", look=Look.READ_TICKET,
            )
        raise Failed(
            f"Ticket {ticket_id} (tenant {session.name}) was not changed as asked: {', '.join(not_applied)} did not "
            f"change; {not_applied_because}. {', '.join(applied) + ' did change. ' if applied else ''}"
            "Read the ticket before trying again.", look=Look.READ_TICKET,
        )
    changed = [
        FieldChange(field=path, before=_SHOWN[path](ticket), after=_SHOWN[path](after) or planned)
        for path, planned in plan.shown_after.items()
    ]
    return TicketUpdated(tenant=session.name, ticket_id=ticket_id, patched=True, changes=changed)


async def _read_back(session: TenantSession, ticket_id: int, what_happened: str) -> Ticket:
    """The ticket as ConnectWise now shows it, when the answer to the PATCH did not show it."""
    try:
        ticket = _ticket_in(await session.client.get(endpoints.ticket(ticket_id)))
        why = "ConnectWise answered without the ticket"
    except ConnectWiseError as failure:
        ticket, why = None, f"HTTP {failure.status}" if failure.status is not None else "no answer"
    if ticket is None:
        raise OutcomeUnknown(
            f"It is unknown whether ticket {ticket_id} (tenant {session.name}) was changed: {what_happened}, and "
            f"reading the ticket back failed too ({why}). Check it before sending the change again.",
            look=Look.READ_TICKET,
        )
    return ticket


def _ticket_in(answer: object) -> Ticket | None:
    """The ticket in an answer, or None when the answer holds none (no body, no id, not a ticket)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("id"), int) or isinstance(answer.get("id"), bool):
        return None
    try:
        return Ticket.model_validate(answer)
    except PydanticValidationError:
        return None
