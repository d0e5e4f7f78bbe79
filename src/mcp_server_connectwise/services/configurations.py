"""Configurations (a company's devices): found by company, name, serial number, type, status or address, and
read in full with the open tickets they are attached to.

Types and statuses are names checked against the tenant's cached lists, a company its identifier or name
(`companies.company`); a name matches as part of a device name, the other texts exactly (in any case: SQL
Server's collation). A MAC address matches however it is punctuated (`00:1A:2B:3C:4D:5E`, `00-1a-2b-3c-4d-5e`,
`001A2B3C4D5E`, `001a.2b3c.4d5e`).

[I] ConnectWise publishes no list of the tickets a configuration is on: the link is kept under each ticket
(`/service/tickets/{id}/configurations`). So a configuration's open tickets are looked for among its company's
open tickets, newest first, at most `OPEN_TICKETS_CHECKED`, with one count request each, a few at a time.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import NotFoundError, endpoints
from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise.models import Company, Configuration, Ticket, label
from mcp_server_connectwise.services import resolve
from mcp_server_connectwise.services.arguments import NameOrId, not_a_yes_no
from mcp_server_connectwise.services.companies import company as resolve_company
from mcp_server_connectwise.services.concurrency import all_or_none
from mcp_server_connectwise.services.errors import Look, Refused, shown
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.ticket_devices import find_configuration, shown_configuration
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

# The columns a search row shows; the details read the whole record.
ROW_FIELDS = (
    "id",
    "name",
    "type/name",
    "status/name",
    "company/identifier",
    "serialNumber",
    "ipAddress",
    "macAddress",
    "lastLoginName",
    "activeFlag",
)
# A company's open tickets a configuration is looked for on (see the module), and how many are asked at once.
OPEN_TICKETS_CHECKED = 50
CONCURRENT_REQUESTS = 4
# Configurations a tenant-wide name or serial number reads, and a refusal lists.
_CANDIDATES = 10
# Search text longer than this matches nothing: no configuration field searched holds more (serialNumber: 250).
MAX_SEARCH_TEXT = 250
_HEX = re.compile(r"[0-9A-Fa-f]")


def mac_digits(text: str) -> str | None:
    """The twelve hex digits of a MAC address however it is punctuated, upper case; None if it is no MAC."""
    digits = "".join(_HEX.findall(text)).upper()
    stripped = re.sub(r"[\s:.\-]", "", text)
    return digits if len(digits) == 12 and len(stripped) == 12 else None


def mac_spellings(text: str) -> tuple[str, ...]:
    """The ways ConnectWise may hold the MAC address `text`: colons, hyphens, bare digits, Cisco's dots."""
    digits = mac_digits(text)
    if digits is None:
        return (resolve.collapse(text),)
    pairs = [digits[i : i + 2] for i in range(0, 12, 2)]
    quads = [digits[i : i + 4] for i in range(0, 12, 4)]
    return (":".join(pairs), "-".join(pairs), digits, ".".join(quads))


class ConfigurationRow(BaseModel):
    id: int
    name: UntrustedText | None = None
    type: str | None = None
    status: str | None = None
    company: str | None = Field(None, description="Company identifier.")
    serial_number: UntrustedText | None = None
    ip_address: UntrustedText | None = None
    mac_address: UntrustedText | None = None
    last_login_name: UntrustedText | None = None
    inactive: bool | None = Field(None, description="Present (true) only for inactive configurations.")

    @classmethod
    def from_configuration(cls, configuration: Configuration) -> ConfigurationRow:
        return cls(
            id=configuration.id,
            name=configuration.name,
            type=label(configuration.type),
            status=label(configuration.status),
            company=configuration.company.identifier if configuration.company else None,
            serial_number=configuration.serial_number or None,
            ip_address=configuration.ip_address or None,
            mac_address=configuration.mac_address or None,
            last_login_name=configuration.last_login_name or None,
            inactive=True if configuration.active_flag is False else None,  # a row's bytes count 25 times
        )


class ConfigurationSearchResult(BaseModel):
    tenant: str
    configurations: list[ConfigurationRow]
    page: int
    has_more: bool = Field(description="More configurations match: ask for next_page.")
    next_page: int | None = None
    notice: str = untrusted_notice("name, serial_number, addresses and last_login_name")


_Text = Annotated[str | None, BeforeValidator(not_a_yes_no)]


class ConfigurationQuery(BaseModel):
    """A configuration search; filters combine with AND."""

    company: Annotated[NameOrId, Field(description='Company identifier or name, e.g. "ACME".')] = None
    name: Annotated[_Text, Field(description="Text the device name contains.")] = None
    serial_number: _Text = None
    type: Annotated[NameOrId, Field(description='Configuration type, e.g. "Managed Workstation".')] = None
    status: Annotated[NameOrId, Field(description='Configuration status, e.g. "Active".')] = None
    ip_address: _Text = None
    mac_address: Annotated[_Text, Field(description="Any punctuation.")] = None
    active_only: Annotated[bool, Field(description="Only active configurations.")] = True
    limit: Annotated[int, Field(ge=1, le=100, description="Rows per page."), BeforeValidator(not_a_yes_no)] = 25
    page: Annotated[
        int, Field(ge=1, description="Page number, from next_page of an earlier call."), BeforeValidator(not_a_yes_no)
    ] = 1


async def search_configurations(session: TenantSession, query: ConfigurationQuery) -> ConfigurationSearchResult:
    name, serial, ip_address, mac = (
        resolve.search_text(argument, getattr(query, argument), MAX_SEARCH_TEXT)
        for argument in ("name", "serial_number", "ip_address", "mac_address")
    )
    resolve.check_page(query.page)
    company = await resolve_company(session, query.company) if query.company is not None else None
    kind = (
        await resolve.configuration_type(session, resolve.name_or_id("type", query.type), writing=False)
        if query.type is not None
        else None
    )
    status = (
        await resolve.configuration_status(session, resolve.name_or_id("status", query.status))
        if query.status is not None
        else None
    )
    try:
        conditions = cw.and_(
            cw.eq("company/id", company.id) if company else None,
            cw.contains("name", name) if name else None,
            cw.eq("serialNumber", serial) if serial else None,
            cw.eq("type/id", kind.id) if kind else None,
            cw.eq("status/id", status.id) if status else None,
            cw.eq("ipAddress", ip_address) if ip_address else None,
            cw.in_("macAddress", mac_spellings(mac)) if mac else None,
            cw.eq("activeFlag", True) if query.active_only else None,
        )
    except cw.UnsafeValueError as exc:
        raise Refused(f"{exc} Change the search and try again.") from None
    page = await session.client.get_page(
        endpoints.CONFIGURATIONS,
        conditions=conditions,
        order_by="name",
        fields=ROW_FIELDS,
        page=query.page,
        page_size=query.limit,
    )
    return ConfigurationSearchResult(
        tenant=session.name,
        configurations=[ConfigurationRow.from_configuration(Configuration.model_validate(i)) for i in page.items],
        page=page.page,
        has_more=page.has_next,
        next_page=page.page + 1 if page.has_next else None,
    )


# --- one configuration, with its open tickets ------------------------------------------------------------


class OpenTicket(BaseModel):
    id: int
    summary: UntrustedText | None = None
    board: str | None = None
    status: str | None = None


class ConfigurationDetails(BaseModel):
    tenant: str
    id: int
    name: UntrustedText | None = None
    type: str | None = None
    status: str | None = None
    active: bool | None = None
    company: UntrustedText | None = None
    company_identifier: str | None = None
    contact: UntrustedText | None = None
    serial_number: UntrustedText | None = None
    model_number: UntrustedText | None = None
    manufacturer: UntrustedText | None = None
    ip_address: UntrustedText | None = None
    mac_address: UntrustedText | None = None
    os_type: UntrustedText | None = None
    os_info: UntrustedText | None = None
    last_login_name: UntrustedText | None = None
    installed: datetime | None = None
    warranty_expires: datetime | None = None
    notes: UntrustedText | None = None
    open_tickets: list[OpenTicket] = Field(description="Newest first.")
    open_tickets_checked: int = Field(description="The company's newest open tickets looked at.")
    more_open_tickets: bool = Field(description="Older ones were not looked at.")
    notice: str = untrusted_notice("name, company, contact, notes, open_tickets and the device's texts")


class ConfigurationLookup(BaseModel):
    configuration: Annotated[
        str | int,
        Field(description="Configuration id, name or serial number."),
        BeforeValidator(not_a_yes_no),
    ]
    company: Annotated[NameOrId, Field(description="Company identifier or name, to narrow a name.")] = None


async def _find_anywhere(session: TenantSession, value: str | int) -> Configuration:
    """The tenant's configuration `value` names: its id, else its exact name or serial number; refused when none
    or several do."""
    resolve.name_or_id("configuration", value)
    configuration_id = resolve.as_id(value)
    if configuration_id is not None:
        try:
            return Configuration.model_validate(await session.client.get(endpoints.configuration(configuration_id)))
        except NotFoundError:
            pass  # a number may be a name or a serial number too
    text = resolve.collapse(str(value))
    try:
        page = await session.client.get_page(
            endpoints.CONFIGURATIONS,
            conditions=cw.or_(cw.eq("name", text), cw.eq("serialNumber", text)),
            order_by="id",
            page_size=_CANDIDATES,
        )
    except cw.UnsafeValueError as exc:
        raise Refused(f"{exc} Give the configuration's id instead.") from None

    async def none() -> str:
        return f"There is no configuration with the id, name or serial number {shown(value)} in tenant {session.name}."

    return await resolve.one_of(
        value,
        [Configuration.model_validate(item) for item in page.items],
        shown_as=lambda c: f"{shown_configuration(c)} of {label(c.company)}",
        several=f"configurations in tenant {session.name}",
        give="configuration as one of their ids, or give company",
        none=none,
        look=Look.FIND_CONFIGURATION,
        more=page.has_next,
    )


async def _attached(session: TenantSession, ticket_id: int, configuration_id: int, limit: asyncio.Semaphore) -> bool:
    async with limit:
        try:
            path = endpoints.ticket_configurations(ticket_id)
            return await session.client.count(path, conditions=cw.eq("id", configuration_id)) > 0
        except NotFoundError:
            return False  # the ticket was deleted since it was listed


async def _open_tickets(session: TenantSession, configuration: Configuration) -> tuple[list[OpenTicket], int, bool]:
    """The open tickets of the configuration's company it is attached to (see the module); how many were
    checked, and whether the company has more."""
    if configuration.company is None or configuration.company.id is None:
        return [], 0, False
    page = await session.client.get_page(
        endpoints.TICKETS,
        conditions=cw.and_(cw.eq("company/id", configuration.company.id), cw.eq("closedFlag", False)),
        fields=("id", "summary", "board/name", "status/name"),
        order_by="id desc",
        page_size=OPEN_TICKETS_CHECKED,
    )
    tickets = [Ticket.model_validate(item) for item in page.items]
    limit = asyncio.Semaphore(CONCURRENT_REQUESTS)
    attached = await all_or_none(*(_attached(session, t.id, configuration.id, limit) for t in tickets))
    found = [
        OpenTicket(id=t.id, summary=t.summary, board=label(t.board), status=label(t.status))
        for t, on_it in zip(tickets, attached, strict=True)
        if on_it
    ]
    return found, len(tickets), page.has_next


async def get_configuration(session: TenantSession, lookup: ConfigurationLookup) -> ConfigurationDetails:
    if lookup.company is not None:
        company: Company = await resolve_company(session, lookup.company)
        found = await find_configuration(session, company, lookup.configuration)
        if resolve.as_id(lookup.configuration) == found.id:  # found by its id: read whole already
            configuration = found
        else:  # found by name or serial number, it holds only the columns a match needs
            configuration = Configuration.model_validate(await session.client.get(endpoints.configuration(found.id)))
    else:
        configuration = await _find_anywhere(session, lookup.configuration)
    tickets, checked, more = await _open_tickets(session, configuration)
    return ConfigurationDetails(
        tenant=session.name,
        id=configuration.id,
        name=configuration.name,
        type=label(configuration.type),
        status=label(configuration.status),
        active=configuration.active_flag,
        company=label(configuration.company),
        company_identifier=configuration.company.identifier if configuration.company else None,
        contact=label(configuration.contact),
        serial_number=configuration.serial_number or None,
        model_number=configuration.model_number or None,
        manufacturer=label(configuration.manufacturer),
        ip_address=configuration.ip_address or None,
        mac_address=configuration.mac_address or None,
        os_type=configuration.os_type or None,
        os_info=configuration.os_info or None,
        last_login_name=configuration.last_login_name or None,
        installed=configuration.installation_date,
        warranty_expires=configuration.warranty_expiration_date,
        notes=configuration.notes or None,
        open_tickets=tickets,
        open_tickets_checked=checked,
        more_open_tickets=more,
    )
