"""Lenient read models of the ConnectWise records the service layer uses, with only the fields it reads.

A read model must never fail on a record ConnectWise did store: a failure there surfaces as an internal
error on every read of that record, and after a write that landed it makes the agent retry (and duplicate)
it. ConnectWise omits fields, adds new ones per version, types many of them loosely (dates and numbers as
strings, `""` for "none") and sometimes sends a name where a reference object belongs. So every model ignores
unknown keys and makes everything but `id` optional, and every field type below turns a value it cannot read
into None instead of raising.

Python names are snake_case; ConnectWise's camelCase names are the aliases (`closed_status` <- `closedStatus`),
and either may be used to build a model. `_info` is kept as `info`.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel


def read_moment(value: object) -> datetime | None:
    """ISO 8601 text (with `Z`, an offset or none: ConnectWise means UTC) as a UTC datetime; else None."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        return None


def _number(value: object) -> float | None:
    """An int, a float or a numeric string as a finite float; else None (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _whole_number(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def _object(value: object) -> dict | None:
    return value if isinstance(value, dict) else None


def _object_or_empty(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _list_or_empty(value: object) -> list:
    """A list of objects, without what is not one: a model of each item must not fail on the others."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


CWDateTime = Annotated[datetime | None, BeforeValidator(read_moment)]
CWNumber = Annotated[float | None, BeforeValidator(_number)]
CWWholeNumber = Annotated[int | None, BeforeValidator(_whole_number)]
CWText = Annotated[str | None, BeforeValidator(_text)]
CWFlag = Annotated[bool | None, BeforeValidator(_flag)]


class CWModel(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)


class Reference(CWModel):
    """A reference to another record, e.g. `{"id": 1, "name": "Service Desk"}` or a company `identifier`."""

    id: CWWholeNumber = None
    name: CWText = None
    identifier: CWText = None


def label(reference: Reference | None) -> str | None:
    """How a reference is shown: its name, else its identifier (a company's or a member's); None when it has neither."""
    return None if reference is None else reference.name or reference.identifier


# A reference sent as anything but an object (`"status": "New"`) is read as no reference at all.
CWReference = Annotated[Reference | None, BeforeValidator(_object)]


class Record(CWModel):
    id: int
    info: Annotated[dict[str, Any], BeforeValidator(_object_or_empty)] = Field(default_factory=dict, alias="_info")


class Ticket(Record):
    summary: CWText = None
    board: CWReference = None
    status: CWReference = None
    company: CWReference = None
    contact: CWReference = None
    contact_name: CWText = None
    contact_email_address: CWText = None
    owner: CWReference = None
    priority: CWReference = None
    type: CWReference = None
    sub_type: CWReference = None
    item: CWReference = None
    severity: CWText = None
    impact: CWText = None
    required_date: CWDateTime = None
    budget_hours: CWNumber = None
    actual_hours: CWNumber = None
    initial_description: CWText = None  # POST-only field (API.md); read when a response echoes it
    closed_flag: CWFlag = None
    closed_date: CWDateTime = None
    sla_status: CWText = None
    external_x_ref: CWText = None  # externalXRef: an integration's key for the ticket
    agreement: CWReference = None


class BoardStatus(Record):
    name: CWText = None
    sort_order: CWWholeNumber = None
    inactive: CWFlag = None
    closed_status: CWFlag = None
    time_entry_not_allowed: CWFlag = None
    default_flag: CWFlag = None
    escalation_status: CWText = None  # the SLA milestone reaching it meets; NoEscalation: the clock waits


class Board(Record):
    name: CWText = None
    inactive_flag: CWFlag = None


class ServiceNote(Record):
    text: CWText = None
    detail_description_flag: CWFlag = None
    internal_analysis_flag: CWFlag = None
    resolution_flag: CWFlag = None
    member: CWReference = None
    contact: CWReference = None
    date_created: CWDateTime = None
    created_by: CWText = None


# A time entry's `status` while its member may still change it (API.md "Time entry status"); past these it is
# in approval or billed, and correcting it is ConnectWise's approval workflow, not an API edit.
EDITABLE_TIME_ENTRY_STATUSES = ("Open", "Rejected", "ErrorsCorrected")


class TimeEntry(Record):
    charge_to_id: CWWholeNumber = None
    charge_to_type: CWText = None
    member: CWReference = None
    work_type: CWReference = None
    time_start: CWDateTime = None
    time_end: CWDateTime = None
    actual_hours: CWNumber = None
    billable_option: CWText = None
    notes: CWText = None
    status: CWText = None


class Priority(Record):
    name: CWText = None


class Member(Record):
    identifier: CWText = None
    first_name: CWText = None
    last_name: CWText = None
    inactive_flag: CWFlag = None


class WorkType(Record):
    name: CWText = None
    inactive_flag: CWFlag = None


# A list of references (a company's `types`), without what is not one.
CWReferences = Annotated[list[Reference], BeforeValidator(_list_or_empty)]


class Company(Record):
    identifier: CWText = None
    name: CWText = None
    deleted_flag: CWFlag = None
    status: CWReference = None
    types: CWReferences = Field(default_factory=list)
    phone_number: CWText = None
    website: CWText = None
    default_contact: CWReference = None
    site: CWReference = None  # its main site, whose address the company's address fields are
    address_line1: CWText = None
    address_line2: CWText = None
    city: CWText = None
    state: CWText = None
    zip: CWText = None
    country: CWReference = None


class CommunicationItem(CWModel):
    type: CWReference = None  # the kind of number or address: "Email", "Direct", "Mobile"...
    communication_type: CWText = None  # Email, Phone, Fax
    value: CWText = None
    default_flag: CWFlag = None


class Contact(Record):
    first_name: CWText = None
    last_name: CWText = None
    company: CWReference = None
    inactive_flag: CWFlag = None
    title: CWText = None
    communication_items: Annotated[list[CommunicationItem], BeforeValidator(_list_or_empty)] = Field(
        default_factory=list
    )

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    def _default(self, communication_type: str) -> str | None:
        """The default value of one kind of communication item, else the first one."""
        items = [i for i in self.communication_items if i.communication_type == communication_type and i.value]
        default = next((item for item in items if item.default_flag), items[0] if items else None)
        return default.value if default else None

    @property
    def email(self) -> str | None:
        """The contact's default email, else its first one."""
        return self._default("Email")

    @property
    def phone(self) -> str | None:
        """The contact's default phone number, else its first one."""
        return self._default("Phone")


class Configuration(Record):
    name: CWText = None
    type: CWReference = None
    status: CWReference = None
    company: CWReference = None
    contact: CWReference = None
    serial_number: CWText = None
    model_number: CWText = None
    manufacturer: CWReference = None
    ip_address: CWText = None
    mac_address: CWText = None
    os_type: CWText = None
    os_info: CWText = None
    last_login_name: CWText = None
    notes: CWText = None
    installation_date: CWDateTime = None
    warranty_expiration_date: CWDateTime = None
    active_flag: CWFlag = None


class Agreement(Record):
    name: CWText = None
    type: CWReference = None
    company: CWReference = None
    agreement_status: CWText = None  # Active, Cancelled, Expired, Inactive
    cancelled_flag: CWFlag = None
    start_date: CWDateTime = None
    end_date: CWDateTime = None
    no_ending_date_flag: CWFlag = None
    sla: CWReference = None


class ConfigurationType(Record):
    name: CWText = None
    inactive_flag: CWFlag = None


class ConfigurationStatus(Record):
    """ConnectWise names a configuration status by its `description` (its references call it `name`)."""

    description: CWText = None
    closed_flag: CWFlag = None
    default_flag: CWFlag = None
