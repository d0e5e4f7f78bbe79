"""Changing a ticket: every name resolved and validated before one PATCH of the fields that change.

A bad status (or one of another board) is refused with the valid ones and nothing is sent. The PATCH
replaces whole references by id (`{"op": "replace", "path": "status", "value": {"id": 5}}`): replacing a
sub-path such as `status/name` can answer 200 without changing anything (API.md). Even so, a change is only
reported once the ticket ConnectWise answered with shows it; a PATCH left without an answer is checked by
reading the ticket back once, after `write_recovery.SETTLE_SECONDS`; still showing the old value then, its
outcome is unknown (ConnectWise may still apply it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import NotFoundError, endpoints
from mcp_server_connectwise.connectwise.models import Reference, Ticket, label, read_moment
from mcp_server_connectwise.connectwise.times import utc_text
from mcp_server_connectwise.services import catalog, resolve, write_recovery
from mcp_server_connectwise.services.agreements import usable_agreement
from mcp_server_connectwise.services.arguments import NameOrId, TicketId, When, any_case, not_a_yes_no, written_text
from mcp_server_connectwise.services.errors import Look, Refused
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.tickets import company_of, read_ticket, ticket_not_found
from mcp_server_connectwise.services.time_entries import STORED_TIME_TOLERANCE
from mcp_server_connectwise.untrusted import UntrustedText, one_line, untrusted_notice

_Level = Literal["Low", "Medium", "High"]
Level = Annotated[_Level, BeforeValidator(any_case(_Level))]
MAX_SUMMARY_CHARS = 100  # ConnectWise's limit on a ticket summary


class TicketChanges(BaseModel):
    """What to change on ticket `ticket_id`; None leaves a field as it is."""

    ticket_id: TicketId
    status: Annotated[NameOrId, Field(description="With board, a status of the new board.")] = None
    priority: NameOrId = None
    board: Annotated[NameOrId, Field(description="To move the ticket; without status it gets the board's default.")] = (
        None
    )
    owner: Annotated[NameOrId, Field(description='Member identifier, e.g. "jsmith".')] = None
    summary: Annotated[str | None, Field(max_length=MAX_SUMMARY_CHARS)] = None
    type: NameOrId = None
    subtype: NameOrId = None
    item: NameOrId = None
    severity: Level | None = None
    impact: Level | None = None
    required_date: Annotated[When, Field(description="Due date.")] = None
    budget_hours: Annotated[float | None, Field(ge=0), BeforeValidator(not_a_yes_no)] = None
    agreement: Annotated[NameOrId, Field(description="Of the ticket's company, active today: name or id.")] = None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in type(self).model_fields if name != "ticket_id")


class FieldChange(BaseModel):
    field: str
    before: float | UntrustedText | None = None
    after: float | UntrustedText | None = None


class TicketUpdated(BaseModel):
    tenant: str
    ticket_id: int
    patched: bool
    changes: list[FieldChange]
    notice: str = untrusted_notice("changes[] of summary")


def _ref_name(reference: Reference | None) -> str | None:
    """A reference as before -> after shows it: its label, else its id."""
    return None if reference is None else label(reference) or str(reference.id)


@dataclass(frozen=True)
class TicketField:
    """A field update_ticket changes: its argument, its ConnectWise patch path, how the ticket shows it (for
    before -> after), and whether a ticket holds the value a patch sets."""

    argument: str
    path: str
    shown: Callable[[Ticket], Any]
    reference: str | None = None  # the Ticket attribute of a reference, compared by id
    on_board: bool = False  # a reference that belongs to the ticket's board: moving the ticket changes it
    holds_value: Callable[[Ticket, Any], bool] | None = None  # default: shown equals the value sent

    def holds(self, ticket: Ticket, value: Any) -> bool:
        if self.reference is not None:
            reference = getattr(ticket, self.reference)
            return reference is not None and reference.id == value["id"]
        if self.holds_value is not None:
            return self.holds_value(ticket, value)
        return self.shown(ticket) == value


def _reference(
    attribute: str, *, on_board: bool = False, argument: str | None = None, path: str | None = None
) -> TicketField:
    return TicketField(
        argument or attribute,
        path or attribute,
        lambda t: _ref_name(getattr(t, attribute)),
        reference=attribute,
        on_board=on_board,
    )


FIELDS: tuple[TicketField, ...] = (
    _reference("board"),
    _reference("status", on_board=True),
    _reference("priority"),
    TicketField(
        "owner",
        "owner",
        lambda t: t.owner.identifier if t.owner and t.owner.identifier else _ref_name(t.owner),
        reference="owner",
    ),
    _reference("type", on_board=True),
    _reference("sub_type", on_board=True, argument="subtype", path="subType"),
    _reference("item", on_board=True),
    TicketField("summary", "summary", lambda t: t.summary),
    TicketField("severity", "severity", lambda t: t.severity),
    TicketField("impact", "impact", lambda t: t.impact),
    TicketField(
        "required_date",
        "requiredDate",
        lambda t: utc_text(t.required_date) if t.required_date else None,
        holds_value=lambda t, sent: _same_moment(t.required_date, sent),
    ),
    # ConnectWise may keep hours to two decimals.
    TicketField(
        "budget_hours",
        "budgetHours",
        lambda t: t.budget_hours,
        holds_value=lambda t, sent: t.budget_hours is not None and math.isclose(t.budget_hours, sent, abs_tol=0.005),
    ),
    _reference("agreement"),
)
FIELD = {field.argument: field for field in FIELDS}
_BY_PATH = {field.path: field for field in FIELDS}


def _shows(ticket: Ticket, operation: dict) -> bool:
    """Whether `ticket` has the value the patch `operation` sets."""
    return _BY_PATH[operation["path"]].holds(ticket, operation["value"])


def _same_moment(stored: object, sent: str) -> bool:
    """Whether a stored date is the one sent: ConnectWise may keep it to the minute."""
    stored_moment, sent_moment = read_moment(stored), read_moment(sent)
    return (
        stored_moment is not None
        and sent_moment is not None
        and abs(stored_moment - sent_moment) <= STORED_TIME_TOLERANCE
    )


@dataclass
class _Plan:
    """The JSON Patch operations for the fields that change, and how each shows after the change."""

    ticket: Ticket
    moved: bool = False  # to another board: every field of the board is set anew
    operations: list[dict] = dataclass_field(default_factory=list)
    shown_after: dict[str, Any] = dataclass_field(default_factory=dict)

    def set(self, argument: str, value: Any, shown: Any, *, unchanged: bool | None = None) -> None:
        """Patch `argument` to `value` unless the ticket already holds it (or `unchanged` says so)."""
        ticket_field = FIELD[argument]
        if unchanged is None:
            unchanged = ticket_field.holds(self.ticket, value) and not (self.moved and ticket_field.on_board)
        if unchanged:
            return
        self.operations.append({"op": "replace", "path": ticket_field.path, "value": value})
        self.shown_after[ticket_field.path] = shown


def summary_text(text: str) -> str:
    """The summary as written: hidden characters removed, whitespace collapsed; refused unless 1 to 100 characters
    or with a control character other than a line break or a tab."""
    summary = one_line(written_text("summary", text))
    if not 0 < len(summary) <= MAX_SUMMARY_CHARS:
        raise Refused(f"A summary must be 1 to {MAX_SUMMARY_CHARS} characters; this one has {len(summary)}.")
    return summary


def _check(changes: TicketChanges) -> None:
    """Refuse what no ticket could take, before any request: an empty or impossible name or id, a summary
    that is empty or too long once cleaned, a date without a zone or outside ConnectWise's range, negative
    or non-finite hours."""
    if changes.is_empty():
        raise Refused("Nothing to change: give at least one field, e.g. status or priority.")
    for ticket_field in FIELDS:
        value = getattr(changes, ticket_field.argument)
        if ticket_field.reference is not None and value is not None:
            resolve.name_or_id(ticket_field.argument, value)
    if changes.summary is not None:
        summary_text(changes.summary)
    if changes.required_date is not None:
        resolve.moment("required_date", changes.required_date)
    if changes.budget_hours is not None and not (math.isfinite(changes.budget_hours) and changes.budget_hours >= 0):
        raise Refused(f"budget_hours must be a number of hours, 0 or more; got {changes.budget_hours!r}.")


async def _plan(session: TenantSession, ticket: Ticket, changes: TicketChanges) -> _Plan:
    plan = _Plan(ticket)
    board_id = ticket.board.id if ticket.board else None
    board_name = ticket.board.name if ticket.board else None
    if changes.board is not None:
        board = await resolve.board(session, changes.board)
        plan.set("board", {"id": board.id}, board.name)
        board_id, board_name = board.id, board.name
    plan.moved = "board" in plan.shown_after
    if board_id is None and (changes.status or changes.type or changes.subtype or changes.item):
        raise Refused(f"Ticket {ticket.id} has no board; give board as well.")
    if changes.status is not None or plan.moved:
        # Refused above otherwise: _check refused an empty status, and a moved ticket has its new board's id.
        assert board_id is not None
        if changes.status is not None:
            status = await resolve.status_on_board(session, board_id, board_name, changes.status)
        else:  # statuses belong to a board: a moved ticket needs one of its new board's
            status = await resolve.default_status(session, board_id, board_name)
        plan.set("status", {"id": status.id}, status.name)
    if changes.priority is not None:
        priority = await resolve.priority(session, changes.priority)
        plan.set("priority", {"id": priority.id}, priority.name)
    if changes.owner is not None:
        owner = await resolve.member(session, changes.owner)
        plan.set("owner", {"id": owner.id}, owner.identifier)
    for argument, kind in (
        ("type", catalog.board_types),
        ("subtype", catalog.board_subtypes),
        ("item", catalog.board_items),
    ):
        value = getattr(changes, argument)
        if value is not None:
            assert board_id is not None  # refused above otherwise: _check refused an empty type, subtype or item
            found = await resolve.board_named(session, kind(board_id), argument, board_name, value)
            plan.set(argument, {"id": found.id}, found.name)
    if changes.summary is not None:
        summary = summary_text(changes.summary)
        plan.set("summary", summary, summary)
    for argument in ("severity", "impact"):
        if (value := getattr(changes, argument)) is not None:
            plan.set(argument, value, value)
    if changes.budget_hours is not None:
        # Sent unless exactly the same: the rounding `holds` allows is ConnectWise's, for reading the answer.
        plan.set(
            "budget_hours",
            changes.budget_hours,
            changes.budget_hours,
            unchanged=ticket.budget_hours == changes.budget_hours,
        )
    if changes.required_date is not None:
        due = utc_text(resolve.moment("required_date", changes.required_date))
        plan.set("required_date", due, due)
    if changes.agreement is not None:
        agreement = await usable_agreement(session, company_of(ticket, "agreement"), changes.agreement)
        plan.set("agreement", {"id": agreement.id}, agreement.name)
    return plan


async def update_ticket(session: TenantSession, changes: TicketChanges) -> TicketUpdated:
    ticket_id = changes.ticket_id
    _check(changes)
    ticket = await read_ticket(session, ticket_id)
    plan = await _plan(session, ticket, changes)
    if not plan.operations:
        return TicketUpdated(tenant=session.name, ticket_id=ticket_id, patched=False, changes=[])
    try:
        after = await write_recovery.patch_checked(session, _patch(session, ticket_id, plan))
    except NotFoundError:
        raise ticket_not_found(session, ticket_id) from None
    changed = [
        FieldChange(field=path, before=_BY_PATH[path].shown(ticket), after=_BY_PATH[path].shown(after) or planned)
        for path, planned in plan.shown_after.items()
    ]
    return TicketUpdated(tenant=session.name, ticket_id=ticket_id, patched=True, changes=changed)


def _patch(session: TenantSession, ticket_id: int, plan: _Plan) -> write_recovery.PlannedPatch[Ticket]:
    """The plan's PATCH, and what update_ticket says when the ticket does not show it."""
    where = f"ticket {ticket_id} (tenant {session.name})"

    def also_applied(not_shown: write_recovery.NotShown) -> str:
        applied = [path for path in plan.shown_after if path not in not_shown.paths]
        return ", ".join(applied) + " did change. " if applied else ""

    def unknown(not_shown: write_recovery.NotShown) -> str:
        return (
            f"It is unknown whether {where} was changed as asked: {not_shown.what_happened}, and the ticket read "
            f"back still shows the old value of {', '.join(not_shown.paths)}; ConnectWise may still apply it. "
            f"{also_applied(not_shown)}Check it before sending the change again."
        )

    def not_applied(not_shown: write_recovery.NotShown) -> str:
        because = (
            f"{not_shown.what_happened}, and the ticket read back still shows the old value"
            if not_shown.read_back
            else "ConnectWise answered 200 without applying it (the silent false success of a PATCH)"
        )
        return (
            f"Ticket {ticket_id} (tenant {session.name}) was not changed as asked: {', '.join(not_shown.paths)} did "
            f"not change; {because}. {also_applied(not_shown)}Read the ticket before trying again."
        )

    return write_recovery.PlannedPatch(
        endpoints.ticket(ticket_id),
        plan.operations,
        read=Ticket.model_validate,
        shows=_shows,
        record="the ticket",
        where=where,
        look=Look.READ_TICKET,
        unreadable=lambda why: f"reading the ticket back failed too ({why}). Check it before sending the change again.",
        unknown=unknown,
        not_applied=not_applied,
    )
