"""Lenient read models of the ConnectWise records the service layer uses.

ConnectWise omits many fields and adds new ones per version, so every model ignores unknown keys and makes
everything but `id` optional. Python names are snake_case; ConnectWise's camelCase names are the aliases
(`closed_status` <- `closedStatus`), and either may be used to build a model. `_info` is kept as `info`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class CWModel(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)


class Reference(CWModel):
    """A reference to another record, e.g. `{"id": 1, "name": "Service Desk"}` or a company `identifier`."""

    id: int | None = None
    name: str | None = None
    identifier: str | None = None


class Record(CWModel):
    id: int
    info: dict[str, Any] = Field(default_factory=dict, alias="_info")


class Ticket(Record):
    summary: str | None = None
    record_type: str | None = None
    board: Reference | None = None
    status: Reference | None = None
    company: Reference | None = None
    contact: Reference | None = None
    contact_name: str | None = None
    contact_email_address: str | None = None
    owner: Reference | None = None
    team: Reference | None = None
    priority: Reference | None = None
    type: Reference | None = None
    sub_type: Reference | None = None
    item: Reference | None = None
    source: Reference | None = None
    severity: str | None = None
    impact: str | None = None
    required_date: datetime | None = None
    budget_hours: float | None = None
    actual_hours: float | None = None
    initial_description: str | None = None  # POST-only field (API.md); read when a response echoes it
    customer_updated_flag: bool | None = None
    closed_flag: bool | None = None
    closed_date: datetime | None = None
    closed_by: str | None = None
    parent_ticket_id: int | None = None
    date_responded: datetime | None = None
    date_resplan: datetime | None = None
    date_resolved: datetime | None = None
    respond_minutes: int | None = None
    res_plan_minutes: int | None = None
    resolve_minutes: int | None = None
    is_in_sla: bool | None = None
    sla_status: str | None = None


class BoardStatus(Record):
    name: str | None = None
    board: Reference | None = None
    sort_order: int | None = None
    display_on_board: bool | None = None
    inactive: bool | None = None
    closed_status: bool | None = None
    time_entry_not_allowed: bool | None = None
    default_flag: bool | None = None
    escalation_status: str | None = None


class Board(Record):
    name: str | None = None
    inactive_flag: bool | None = None
    project_flag: bool | None = None
    time_entry_locked_flag: bool | None = None
    discussions_locked_flag: bool | None = None


class ServiceNote(Record):
    ticket_id: int | None = None
    text: str | None = None
    detail_description_flag: bool | None = None
    internal_analysis_flag: bool | None = None
    resolution_flag: bool | None = None
    issue_flag: bool | None = None
    customer_updated_flag: bool | None = None
    member: Reference | None = None
    contact: Reference | None = None
    date_created: datetime | None = None
    created_by: str | None = None
    internal_flag: bool | None = None
    external_flag: bool | None = None


class TimeEntry(Record):
    company: Reference | None = None
    charge_to_id: int | None = None
    charge_to_type: str | None = None
    member: Reference | None = None
    work_type: Reference | None = None
    work_role: Reference | None = None
    time_start: datetime | None = None
    time_end: datetime | None = None
    actual_hours: float | None = None
    hours_deduct: float | None = None
    billable_option: str | None = None
    notes: str | None = None
    internal_notes: str | None = None
    add_to_detail_description_flag: bool | None = None
    add_to_internal_analysis_flag: bool | None = None
    add_to_resolution_flag: bool | None = None
    date_entered: datetime | None = None
    entered_by: str | None = None


class Priority(Record):
    name: str | None = None
    color: str | None = None
    sort_order: int | None = None
    default_flag: bool | None = None
    level: str | None = None


class Member(Record):
    identifier: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    inactive_flag: bool | None = None
    primary_email: str | None = None
    title: str | None = None


class WorkType(Record):
    name: str | None = None
    bill_time: str | None = None
    inactive_flag: bool | None = None
    overall_default_flag: bool | None = None


class Company(Record):
    identifier: str | None = None
    name: str | None = None
    status: Reference | None = None
    phone_number: str | None = None
    website: str | None = None
    deleted_flag: bool | None = None


class Contact(Record):
    first_name: str | None = None
    last_name: str | None = None
    company: Reference | None = None
    title: str | None = None
    inactive_flag: bool | None = None
    default_phone_nbr: str | None = None
    communication_items: list[dict[str, Any]] = Field(default_factory=list)


class Configuration(Record):
    name: str | None = None
    type: Reference | None = None
    status: Reference | None = None
    company: Reference | None = None
    contact: Reference | None = None
    serial_number: str | None = None
    active_flag: bool | None = None
