"""Configurations (devices) on tickets: found within the ticket's company, attached and detached once.

A configuration is named by id, by name or by serial number, and only a configuration of the ticket's own
company is taken: a device of another customer on a ticket is a mistake a person would not make on purpose.

Attaching one already attached answers 409 in ConnectWise, and detaching one that is not attached 404: both
mean the ticket already is as asked, so both are reported as "already" and never as an error. That also
makes a re-send safe, so a lost answer is settled by sending once more, not by looking.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from mcp_server_connectwise.connectwise import (
    AmbiguousWriteError,
    ConflictError,
    ConnectWiseError,
    NotFoundError,
    ServerError,
    TransportError,
    endpoints,
)
from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise.models import Company, Configuration, label
from mcp_server_connectwise.services import resolve, write_recovery
from mcp_server_connectwise.services.arguments import RecordName, TicketId
from mcp_server_connectwise.services.companies import described
from mcp_server_connectwise.services.errors import Failed, Look, OutcomeUnknown, Refused, ServiceError, explain, shown
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.tickets import company_of, read_ticket, ticket_not_found
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

CONFIGURATION_FIELDS = ("id", "name", "type", "company", "serialNumber", "activeFlag")
_CANDIDATES = 10  # read when matching a name or serial number, and listed in a refusal


class DeviceOnTicket(BaseModel):
    ticket_id: TicketId
    configuration: Annotated[
        RecordName, Field(description="Configuration (device) id, name or serial number, within the ticket's company.")
    ]


class DeviceChange(BaseModel):
    tenant: str
    ticket_id: int
    configuration_id: int
    name: UntrustedText | None = None
    changed: bool = Field(description="False when the ticket already was as asked: nothing changed.")
    notice: str = untrusted_notice("name")


def shown_configuration(configuration: Configuration) -> str:
    """How a sentence names a configuration: `ACME-WS-014 (id 4, serial SN1234)`."""
    serial = f", serial {configuration.serial_number}" if configuration.serial_number else ""
    return f"{configuration.name} (id {configuration.id}{serial})"


async def find_configuration(session: TenantSession, company: Company, value: str | int) -> Configuration:
    """The configuration of `company` that `value` names: its id, its name or its serial number (any case);
    refused when none or several do, with the candidates."""
    resolve.name_or_id("configuration", value)
    configuration_id = resolve.as_id(value)
    elsewhere = ""
    if configuration_id is not None:
        try:
            found = Configuration.model_validate(await session.client.get(endpoints.configuration(configuration_id)))
        except NotFoundError:
            found = None
        if found is not None and found.company is not None and found.company.id == company.id:
            return found
        if found is not None:
            elsewhere = f" (configuration {configuration_id} belongs to company {label(found.company)})"
        # A number may be a name or a serial number as well: looked for as one below.
    text = resolve.collapse(str(value))
    of_company = cw.eq("company/id", company.id)
    try:
        page = await session.client.get_page(
            endpoints.CONFIGURATIONS,
            conditions=cw.and_(of_company, cw.or_(cw.eq("name", text), cw.eq("serialNumber", text))),
            fields=CONFIGURATION_FIELDS,
            order_by="id",
            page_size=_CANDIDATES,
        )
    except cw.UnsafeValueError as exc:
        raise Refused(f"{exc} Give the configuration's id instead.") from None

    async def what_there_is() -> str:
        others = await session.client.get_page(
            endpoints.CONFIGURATIONS,
            conditions=cw.and_(of_company, cw.eq("activeFlag", True)),
            fields=CONFIGURATION_FIELDS,
            order_by="name",
            page_size=_CANDIDATES,
        )
        listed = [Configuration.model_validate(item) for item in others.items]
        has = (
            f"its configurations include {', '.join(shown_configuration(c) for c in listed)}"
            if listed
            else "it has none"
        )
        return f"Company {described(company)} has no configuration with the id, name or serial number {shown(value)}{elsewhere}; {has}."

    return await resolve.one_of(
        value,
        [Configuration.model_validate(item) for item in page.items],
        shown_as=shown_configuration,
        several=f"configurations of company {described(company)}",
        give="configuration as one of their ids",
        none=what_there_is,
    )


async def _company_of_ticket(session: TenantSession, ticket_id: int) -> Company:
    return company_of(await read_ticket(session, ticket_id), "configuration")


async def attach(session: TenantSession, ticket_id: int, configuration: Configuration) -> bool:
    """Attach `configuration` to the ticket; False when it already was. A lost answer is settled by sending
    once more (see the module)."""
    path = endpoints.ticket_configurations(ticket_id)
    return await _twice(
        session, ticket_id, configuration, "attach", lambda: session.client.post(path, {"id": configuration.id})
    )


async def attach_to_new_ticket(session: TenantSession, ticket_id: int, configuration: Configuration) -> str | None:
    """Attach `configuration` to a ticket just created; why it could not be, or None. Never raises for a
    ConnectWise failure: the ticket exists, and the answer must say so whatever the attach met."""
    try:
        await attach(session, ticket_id, configuration)
    except ServiceError as failure:
        return f"{shown_configuration(configuration)}: {failure}"
    except ConnectWiseError as failure:
        return f"{shown_configuration(configuration)}: {explain(failure, session.name)}"
    return None


async def detach(session: TenantSession, ticket_id: int, configuration: Configuration) -> bool:
    """Detach `configuration` from the ticket; False when it was not attached."""
    path = endpoints.ticket_configuration(ticket_id, configuration.id)
    return await _twice(session, ticket_id, configuration, "detach", lambda: session.client.delete(path))


async def _twice(session: TenantSession, ticket_id: int, configuration: Configuration, verb: str, send: Any) -> bool:
    """Send an attach or detach; after a failure whose outcome is unknown, send it once more: a second
    attach answers 409 and a second detach 404 if the first one was done."""
    already = ConflictError if verb == "attach" else NotFoundError
    first_may_have_applied = False
    for attempt in range(2):
        try:
            await send()
        except already:
            # On the second attempt: done by the first, whose answer was lost - if it could have been applied.
            return first_may_have_applied
        except (AmbiguousWriteError, ServerError, TransportError) as failure:
            first_may_have_applied = isinstance(failure, AmbiguousWriteError)
            if attempt == 1:
                raise Failed(
                    f"Could not {verb} configuration {shown_configuration(configuration)} on ticket {ticket_id} "
                    f"(tenant {session.name}): both attempts failed ({failure}); try again later."
                ) from None
            await write_recovery.settle(
                write_recovery.SETTLE_SECONDS,
                lambda: OutcomeUnknown(
                    f"It is unknown whether configuration {shown_configuration(configuration)} was {verb}ed on ticket {ticket_id} "
                    f"(tenant {session.name}): the request got no answer and this call had no time left to send "
                    "it again. Read the ticket before retrying; a retry is safe.",
                    look=Look.READ_TICKET,
                ),
            )
        else:
            return True
    raise AssertionError("unreachable: the loop returns or raises")


async def attach_configuration(session: TenantSession, request: DeviceOnTicket) -> DeviceChange:
    company = await _company_of_ticket(session, request.ticket_id)
    configuration = await find_configuration(session, company, request.configuration)
    try:
        changed = await attach(session, request.ticket_id, configuration)
    except NotFoundError:
        raise ticket_not_found(session, request.ticket_id) from None
    return DeviceChange(
        tenant=session.name,
        ticket_id=request.ticket_id,
        configuration_id=configuration.id,
        name=configuration.name,
        changed=changed,
    )


async def detach_configuration(session: TenantSession, request: DeviceOnTicket) -> DeviceChange:
    company = await _company_of_ticket(session, request.ticket_id)
    configuration = await find_configuration(session, company, request.configuration)
    changed = await detach(session, request.ticket_id, configuration)
    return DeviceChange(
        tenant=session.name,
        ticket_id=request.ticket_id,
        configuration_id=configuration.id,
        name=configuration.name,
        changed=changed,
    )
