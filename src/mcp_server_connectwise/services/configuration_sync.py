"""Configurations kept in line with what an RMM reports: one device (`upsert_configuration`) or a batch of a
company's devices (`sync_configurations`), each created, changed or left as it is.

Matching, within the company: by serial number, else by name, both in any case - as RMM syncs in the wild do
(API.md). Several records matching is refused with the candidates: which one is the device is a person's call.
A match gets one PATCH of only the fields that differ (none differ: nothing is sent, "unchanged"); no match, a
POST. A field the device leaves out is left as it is. Type, status and contact are names checked before
anything is sent (types and statuses against the tenant's cached lists).

Exactly once: a POST whose answer is lost is looked for (company, name, serial number, entered since it was
sent) before it is ever sent again (write recovery); a PATCH only replaces values, so one whose answer is lost
is read back, and sending it again changes nothing. An RMM that retries a whole sync finds its devices by serial
number and name, so nothing is created twice.

A batch lists the company's configurations once, decides every device from that listing, then sends only the
writes needed, `CONCURRENT_REQUESTS` at a time (the tenant's rate budget paces them). A write is started only
while the call's deadline leaves it time to settle a lost answer; the devices not reached by then are reported
as such, so that the caller sends only those again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import (
    ConnectWiseError,
    DeadlineError,
    NotFoundError,
    endpoints,
)
from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise.models import Company, Configuration
from mcp_server_connectwise.connectwise.scope import current as current_scope
from mcp_server_connectwise.services import progress, resolve, write_recovery
from mcp_server_connectwise.services.arguments import CompanyName, NameOrId, not_a_yes_no, written_text
from mcp_server_connectwise.services.companies import company as resolve_company
from mcp_server_connectwise.services.companies import described
from mcp_server_connectwise.services.configurations import CONCURRENT_REQUESTS, mac_digits
from mcp_server_connectwise.services.contacts import contact as resolve_contact
from mcp_server_connectwise.services.errors import Failed, Look, Refused, ServiceError, explain, shown
from mcp_server_connectwise.services.notes import MAX_NOTE_CHARS
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.ticket_devices import shown_configuration
from mcp_server_connectwise.services.write_recovery import PlannedWrite, entered_since, same_text
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

# Devices one sync takes: a page of outcomes a model can read, and a few minutes of the rate budget at most.
MAX_DEVICES = 200
# Configurations a match or a look for a lost POST reads, and a refusal lists.
_CANDIDATES = 10
# References by id; a manufacturer goes by name.
_REFERENCES = ("type", "status", "contact")
# The fields a device is matched by, in any case.
_MATCHED_BY = ("serialNumber", "name")


@dataclass(frozen=True)
class _TextField:
    argument: str
    path: str  # ConnectWise's field
    max_chars: int  # Configuration.json's max length
    lines: bool = False  # keeps its line breaks; every other text is one line
    named: bool = False  # a reference by name: {"name": text}


_TEXT_FIELDS = (
    _TextField("name", "name", 100),
    _TextField("serial_number", "serialNumber", 250),
    _TextField("model_number", "modelNumber", 50),
    _TextField("ip_address", "ipAddress", 50),
    _TextField("mac_address", "macAddress", 25),
    _TextField("os_type", "osType", 250),
    _TextField("os_info", "osInfo", 250),
    _TextField("last_login_name", "lastLoginName", 100),
    _TextField("notes", "notes", MAX_NOTE_CHARS, lines=True),  # ConnectWise publishes none: our note limit
    # [I] ConnectWise's limit for a manufacturer's name is not public.
    _TextField("manufacturer", "manufacturer", 50, named=True),
)
# What a match reads of each configuration: every field a device can set (notes only when a device sets them).
_MATCH_FIELDS = ("id", "company", "activeFlag", *_REFERENCES, *(f.path for f in _TEXT_FIELDS if f.path != "notes"))


class Device(BaseModel):
    name: Annotated[str, Field(description="Device (host) name.")]
    type: Annotated[
        str | int, Field(description='Configuration type, e.g. "Managed Workstation".'), BeforeValidator(not_a_yes_no)
    ]
    serial_number: Annotated[str | None, Field(description="Matched first.")] = None
    model_number: str | None = None
    manufacturer: Annotated[str | None, Field(description="Manufacturer name.")] = None
    ip_address: str | None = None
    mac_address: str | None = None
    os_type: str | None = None
    os_info: str | None = None
    last_login_name: str | None = None
    contact: Annotated[NameOrId, Field(description="Contact of the company: name, email or id.")] = None
    status: Annotated[NameOrId, Field(description='Configuration status, e.g. "Active".')] = None
    notes: str | None = None


class ConfigurationUpsert(Device):
    company: CompanyName


class FieldChange(BaseModel):
    field: str
    before: UntrustedText | None = None
    after: UntrustedText | None = None


Written = Literal["created", "updated", "unchanged"]


class ConfigurationUpserted(BaseModel):
    tenant: str
    outcome: Written
    configuration_id: int
    name: UntrustedText | None = None
    company: UntrustedText | None = None
    company_identifier: str | None = None
    matched_by: Literal["serial_number", "name"] | None = Field(None, description="How the record was found.")
    changes: list[FieldChange] = Field(default_factory=list, description="Each field updated, before -> after.")
    notice: str = untrusted_notice("name, company and changes")


class DeviceSync(BaseModel):
    company: CompanyName
    devices: Annotated[
        list[Device], Field(min_length=1, max_length=MAX_DEVICES, description="Fields left out stay as they are.")
    ]


Outcome = Literal["created", "updated", "unchanged", "refused", "failed", "unknown", "not_reached"]
# A device with one of these outcomes is not known to be as reported: the caller sends it again.
TO_REPEAT: tuple[Outcome, ...] = ("failed", "unknown", "not_reached")
_BY_SERVICE_OUTCOME: dict[str, Outcome] = {"refused": "refused", "error": "failed", "unknown": "unknown"}


class DeviceOutcome(BaseModel):
    device: int = Field(description="Its index in devices, from 0.")
    name: UntrustedText | None = None
    outcome: Outcome
    configuration_id: int | None = None
    changed: list[str] | None = Field(None, description="The fields updated.")
    reason: UntrustedText | None = None


class SyncResult(BaseModel):
    tenant: str
    company: UntrustedText | None = None
    company_identifier: str | None = None
    counts: dict[str, int] = Field(description="Devices per outcome.")
    to_repeat: list[int] = Field(description="Devices to send again (failed, unknown, not reached).")
    devices: list[DeviceOutcome]
    notice: str = untrusted_notice("company, each device's name and reason")


# --- what a device asks for ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Value:
    argument: str
    sent: Any  # as the body holds it: text, or a reference ({"id"} or {"name"})
    shown: str  # as a change shows it


@dataclass
class _Plan:
    """One device: what it asks ConnectWise to hold (ConnectWise field -> value), and what matched."""

    index: int
    name: str
    serial: str | None
    wanted: dict[str, _Value]
    record: dict | None = None  # the configuration it matched
    matched_by: Literal["serial_number", "name"] | None = None
    operations: list[dict] = field(default_factory=list)
    changes: list[FieldChange] = field(default_factory=list)


def _checked(index: int, device: Device) -> _Plan:
    """The device's texts as they will be written (cleaned, one line, within ConnectWise's lengths); refused,
    before any request, otherwise."""
    wanted: dict[str, _Value] = {}
    for text_field in _TEXT_FIELDS:
        raw = getattr(device, text_field.argument)
        if raw is None:
            continue
        text = written_text(text_field.argument, raw)
        text = text.strip() if text_field.lines else resolve.collapse(text)
        if len(text) > text_field.max_chars:
            raise Refused(
                f"{text_field.argument} is {len(text)} characters long; ConnectWise holds at most "
                f"{text_field.max_chars}, so shorten it."
            )
        if text:  # blank: not reported
            wanted[text_field.path] = _Value(text_field.argument, {"name": text} if text_field.named else text, text)
    if "name" not in wanted:
        raise Refused("name is empty; give the device's name.")
    for path in _MATCHED_BY:
        if path in wanted:
            try:
                cw.eq(path, wanted[path].sent)  # what a match (and a look for a lost POST) searches for
            except cw.UnsafeValueError as exc:
                raise Refused(f"{wanted[path].argument} cannot be looked for in ConnectWise: {exc}") from None
    for argument in _REFERENCES:
        if (value := getattr(device, argument)) is not None:
            resolve.name_or_id(argument, value)
    serial = wanted.get("serialNumber")
    return _Plan(index, wanted["name"].sent, serial.sent if serial else None, wanted)


class _Names:
    """A company's type, status and contact names as references, each distinct name looked up once (a batch
    names the same few again and again)."""

    def __init__(self, session: TenantSession, company: Company) -> None:
        self.session, self.company = session, company
        self._found: dict[tuple[str, str], _Value | ServiceError | ConnectWiseError] = {}

    async def resolve(self, plan: _Plan, device: Device) -> None:
        """Add the device's references to its plan; raises what looking one up raised (once per name)."""
        for argument in _REFERENCES:
            value = getattr(device, argument)
            if value is None:
                continue
            key = (argument, resolve.normalise(str(value)))
            if key not in self._found:
                try:
                    self._found[key] = await self._lookup(argument, value)
                except (ServiceError, ConnectWiseError) as failure:
                    self._found[key] = failure
            found = self._found[key]
            if isinstance(found, Exception):
                raise found.with_traceback(None)
            plan.wanted[argument] = found

    async def _lookup(self, argument: str, value: str | int) -> _Value:
        if argument == "type":
            kind = await resolve.configuration_type(self.session, value, writing=True)
            return _Value("type", {"id": kind.id}, kind.name or str(kind.id))
        if argument == "status":
            status = await resolve.configuration_status(self.session, value)
            return _Value("status", {"id": status.id}, status.description or str(status.id))
        person = await resolve_contact(self.session, self.company, value)
        return _Value("contact", {"id": person.id}, person.full_name or str(person.id))


def _differs(path: str, stored: dict, sent: Any) -> bool:
    """Whether the record's `path` holds something other than `sent` (as a body would hold it)."""
    current = stored.get(path)
    if path in _REFERENCES:
        return not (isinstance(current, dict) and current.get("id") == sent["id"])
    if path == "manufacturer":
        name = current.get("name") if isinstance(current, dict) else None
        return not (isinstance(name, str) and resolve.normalise(name) == resolve.normalise(sent["name"]))
    if not isinstance(current, str):
        return True
    if path == "macAddress" and (digits := mac_digits(sent)) is not None:
        return mac_digits(current) != digits  # however punctuated
    if path == "notes":
        return not same_text(current, sent)
    if path in _MATCHED_BY:  # the same name or serial number in another case is the same device's: kept as it is
        return _key(current) != _key(sent)
    return current.strip() != sent


def _shown(path: str, stored: dict) -> str | None:
    current = stored.get(path)
    if isinstance(current, dict):
        return current.get("name") or (str(current["id"]) if current.get("id") is not None else None)
    return current if isinstance(current, str) else None


def _key(text: str) -> str:
    return resolve.normalise(text)


def _several(company: Company, what: str, value: str, found: list[dict]) -> Refused:
    listed = ", ".join(shown_configuration(Configuration.model_validate(record)) for record in found)
    return Refused(
        f"{len(found)} configurations of company {described(company)} have the {what} {shown(value)}: {listed}; "
        "nothing was written. Remove or correct the duplicates in ConnectWise, then send the device again."
    )


def _match(company: Company, plan: _Plan, by_serial: list[dict], by_name: list[dict]) -> None:
    """Set what the device matched, among the records with its serial number and those with its name, and the
    operations that make the record hold what the device asks (none: unchanged)."""
    if plan.serial is not None and by_serial:
        if len(by_serial) > 1:
            raise _several(company, "serial number", plan.serial, by_serial)
        plan.record, plan.matched_by = by_serial[0], "serial_number"
    elif by_name:
        if len(by_name) > 1:
            raise _several(company, "name", plan.name, by_name)
        plan.record, plan.matched_by = by_name[0], "name"
    else:
        return
    for path, value in plan.wanted.items():
        if _differs(path, plan.record, value.sent):
            plan.operations.append({"op": "replace", "path": path, "value": value.sent})
            plan.changes.append(FieldChange(field=value.argument, before=_shown(path, plan.record), after=value.shown))


def _fields(notes: bool) -> tuple[str, ...]:
    return (*_MATCH_FIELDS, "notes") if notes else _MATCH_FIELDS


# --- the writes ------------------------------------------------------------------------------------------


def _created(session: TenantSession, company: Company, plan: _Plan) -> PlannedWrite:
    body = {"company": {"id": company.id}, **{path: value.sent for path, value in plan.wanted.items()}}

    async def find(since: datetime) -> list[dict]:
        """The company's configurations with this name (and serial number) entered since `since`, newest first."""
        items = await session.client.list_all(
            endpoints.CONFIGURATIONS,
            conditions=cw.and_(
                cw.eq("company/id", company.id),
                cw.eq("name", plan.name),
                cw.eq("serialNumber", plan.serial) if plan.serial is not None else None,
                cw.ge("lastUpdated", since),  # every object takes lastUpdated (API.md); a new one was updated then
            ),
            fields=("id", "name", "serialNumber", "_info/dateEntered"),
            order_by="id desc",
            page_size=_CANDIDATES,
            limit=_CANDIDATES,
        )
        return [item for item in items if entered_since(item.get("_info") or {}, "dateEntered", since)]

    return PlannedWrite(
        "configuration",
        endpoints.CONFIGURATIONS,
        body,
        f"for company {described(company)}",
        check="the company's configurations",
        find=find,
        look=Look.FIND_CONFIGURATION,
    )


async def _patch(session: TenantSession, plan: _Plan) -> None:
    """Send the plan's PATCH; a lost answer is settled by reading the record back."""
    assert plan.record is not None
    record_id = plan.record["id"]
    again = "Send the device again: the same values change nothing twice."

    def not_shown_sentence(not_shown: write_recovery.NotShown) -> str:
        return (
            f"Configuration {record_id} (tenant {session.name}) does not show the change of "
            f"{', '.join(not_shown.paths)}; send the device again."
        )

    patch = write_recovery.PlannedPatch(
        endpoints.configuration(record_id),
        plan.operations,
        read=dict,
        shows=lambda record, operation: not _differs(operation["path"], record, operation["value"]),
        record="the record",
        where=f"configuration {record_id} (tenant {session.name})",
        look=Look.FIND_CONFIGURATION,
        unreadable=lambda _: f"reading it back failed too. {again}",
        unknown=not_shown_sentence,  # not shown after a lost answer: ConnectWise may still be applying it
        not_applied=not_shown_sentence,
        no_time=f"the call had no time left to read it back. {again}",
    )
    try:
        await write_recovery.patch_checked(session, patch)
    except NotFoundError:
        raise Failed(
            f"Configuration {record_id} was deleted from ConnectWise (tenant {session.name}) after it was read; "
            "send the device again to create it."
        ) from None


async def _write(session: TenantSession, company: Company, plan: _Plan) -> tuple[Written, int]:
    if plan.record is None:
        created = await write_recovery.send_once(session, _created(session, company, plan))
        return "created", created["id"]
    if plan.operations:
        await _patch(session, plan)
        return "updated", plan.record["id"]
    return "unchanged", plan.record["id"]


# --- one device ------------------------------------------------------------------------------------------


async def _with(session: TenantSession, company: Company, path: str, value: str, notes: bool) -> list[dict]:
    """The company's configurations whose `path` is `value` (in any case), at most a refusal's worth."""
    page = await session.client.get_page(
        endpoints.CONFIGURATIONS,
        conditions=cw.and_(cw.eq("company/id", company.id), cw.eq(path, value)),
        fields=_fields(notes),
        order_by="id",
        page_size=_CANDIDATES,
    )
    return [record for record in page.items if _key(str(record.get(path) or "")) == _key(value)]


async def upsert_configuration(session: TenantSession, request: ConfigurationUpsert) -> ConfigurationUpserted:
    plan = _checked(0, request)
    company = await resolve_company(session, request.company)
    await _Names(session, company).resolve(plan, request)
    notes = "notes" in plan.wanted
    by_serial = await _with(session, company, "serialNumber", plan.serial, notes) if plan.serial is not None else []
    by_name = [] if by_serial else await _with(session, company, "name", plan.name, notes)
    _match(company, plan, by_serial, by_name)
    outcome, record_id = await _write(session, company, plan)
    return ConfigurationUpserted(
        tenant=session.name,
        outcome=outcome,
        configuration_id=record_id,
        name=plan.name,
        company=company.name,
        company_identifier=company.identifier,
        matched_by=plan.matched_by,
        changes=plan.changes if outcome == "updated" else [],
    )


# --- a batch ---------------------------------------------------------------------------------------------


def _duplicates(plans: list[_Plan]) -> dict[int, str]:
    """Why some devices of a batch cannot be told apart: a serial number already given by an earlier device,
    or a name without a serial number that another device has too. By index."""
    refused: dict[int, str] = {}
    first_with_serial: dict[str, int] = {}
    names: dict[str, int] = {}
    for plan in plans:
        names[_key(plan.name)] = names.get(_key(plan.name), 0) + 1
    for plan in plans:
        if plan.serial is not None:
            earlier = first_with_serial.setdefault(_key(plan.serial), plan.index)
            if earlier != plan.index:
                refused[plan.index] = (
                    f"device {earlier} has the same serial number {shown(plan.serial)}; send each device once."
                )
        elif names[_key(plan.name)] > 1:
            refused[plan.index] = (
                f"{names[_key(plan.name)]} devices of this sync are named {shown(plan.name)}: without a serial number "
                "it cannot be told which record is which; give it its serial number."
            )
    return refused


def _time_for_a_write() -> bool:
    """Whether the call's deadline leaves a write time to be sent and, if its answer is lost, to be settled."""
    remaining = current_scope().remaining()
    return remaining is None or remaining >= write_recovery.SETTLE_SECONDS + write_recovery.LOOK_SECONDS


async def _run(session: TenantSession, company: Company, plan: _Plan, limit: asyncio.Semaphore) -> DeviceOutcome:
    """Make the device's write, if the call's deadline leaves time for it; its outcome either way."""
    async with limit:
        if not _time_for_a_write():
            return _not_reached(plan, "the call's time ran out before it was sent; nothing was written.")
        try:
            outcome, record_id = await _write(session, company, plan)
        except (ServiceError, ConnectWiseError) as failure:
            return _not_done(session, plan, failure)
    return DeviceOutcome(
        device=plan.index,
        name=plan.name,
        outcome=outcome,
        configuration_id=record_id,
        changed=[change.field for change in plan.changes] if outcome == "updated" else None,
    )


def _not_reached(plan: _Plan, why: str) -> DeviceOutcome:
    return DeviceOutcome(device=plan.index, name=plan.name, outcome="not_reached", reason=why)


def _not_done(session: TenantSession, plan: _Plan, failure: ServiceError | ConnectWiseError) -> DeviceOutcome:
    """The outcome of a device stopped by `failure`: refused, failed, unknown, or not reached (a request the
    call's deadline stopped was not sent: the client says so with a DeadlineError)."""
    if isinstance(failure, DeadlineError):
        return _not_reached(plan, str(explain(failure, session.name)))
    explained = failure if isinstance(failure, ServiceError) else explain(failure, session.name)
    return DeviceOutcome(
        device=plan.index, name=plan.name, outcome=_BY_SERVICE_OUTCOME[explained.outcome], reason=str(explained)
    )


async def sync_configurations(session: TenantSession, request: DeviceSync) -> SyncResult:
    outcomes: dict[int, DeviceOutcome] = {}
    plans: list[_Plan] = []
    for index, device in enumerate(request.devices):
        try:
            plans.append(_checked(index, device))
        except Refused as refused:
            outcomes[index] = DeviceOutcome(device=index, name=device.name, outcome="refused", reason=str(refused))
    for index, why in _duplicates(plans).items():
        outcomes[index] = DeviceOutcome(device=index, name=request.devices[index].name, outcome="refused", reason=why)
    plans = [plan for plan in plans if plan.index not in outcomes]
    company = await resolve_company(session, request.company)
    listed = await session.client.list_all(
        endpoints.CONFIGURATIONS,
        conditions=cw.eq("company/id", company.id),
        fields=_fields(any("notes" in plan.wanted for plan in plans)),
        order_by="id",
    )
    by_serial: dict[str, list[dict]] = {}
    by_name: dict[str, list[dict]] = {}
    for record in listed:
        if isinstance(serial := record.get("serialNumber"), str) and serial.strip():
            by_serial.setdefault(_key(serial), []).append(record)
        if isinstance(name := record.get("name"), str):
            by_name.setdefault(_key(name), []).append(record)
    names, claimed, ready = _Names(session, company), set(), []
    for plan in plans:
        device = request.devices[plan.index]
        try:
            await names.resolve(plan, device)
        except (ServiceError, ConnectWiseError) as failure:  # nothing is written yet: only this device is stopped
            outcomes[plan.index] = _not_done(session, plan, failure)
            continue
        try:
            # A record an earlier device of the batch matched is that device's, not this one's.
            _match(
                company,
                plan,
                [r for r in by_serial.get(_key(plan.serial), []) if r["id"] not in claimed] if plan.serial else [],
                [r for r in by_name.get(_key(plan.name), []) if r["id"] not in claimed],
            )
        except Refused as refused:
            outcomes[plan.index] = _not_done(session, plan, refused)
            continue
        if plan.record is None or plan.operations:
            ready.append(plan)
        else:
            outcomes[plan.index] = DeviceOutcome(
                device=plan.index, name=plan.name, outcome="unchanged", configuration_id=plan.record["id"]
            )
        if plan.record is not None:
            claimed.add(plan.record["id"])
    limit = asyncio.Semaphore(CONCURRENT_REQUESTS)
    async with asyncio.TaskGroup() as group:  # a bug in one device's write stops the others, not only itself
        tasks = [
            group.create_task(
                progress.counted(_run(session, company, plan, limit), total=len(ready), what="devices written")
            )
            for plan in ready
        ]
    for task in tasks:
        done = task.result()
        outcomes[done.device] = done
    ordered = [outcomes[index] for index in sorted(outcomes)]
    counts: dict[str, int] = {}
    for done in ordered:
        counts[done.outcome] = counts.get(done.outcome, 0) + 1
    return SyncResult(
        tenant=session.name,
        company=company.name,
        company_identifier=company.identifier,
        counts=counts,
        to_repeat=[done.device for done in ordered if done.outcome in TO_REPEAT],
        devices=ordered,
    )
