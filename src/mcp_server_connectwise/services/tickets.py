"""A ticket as the other services read it, and the refusal of one that does not exist."""

from __future__ import annotations

from datetime import datetime

from mcp_server_connectwise.connectwise import (
    NotFoundError,
    endpoints,
)
from mcp_server_connectwise.connectwise.models import (
    Company,
    Ticket,
    label,
    read_moment,
)
from mcp_server_connectwise.services.errors import Look, Refused
from mcp_server_connectwise.services.tenancy import TenantSession


def ticket_not_found(session: TenantSession, ticket_id: int) -> Refused:
    return Refused(f"Ticket {ticket_id} was not found in tenant {session.name}; check the id.", look=Look.FIND_TICKET)


async def read_ticket(session: TenantSession, ticket_id: int) -> Ticket:
    try:
        return Ticket.model_validate(await session.client.get(endpoints.ticket(ticket_id)))
    except NotFoundError:
        raise ticket_not_found(session, ticket_id) from None


def company_of(ticket: Ticket, needed_for: str) -> Company:
    """The ticket's company, as the company's resolvers take it; refused, saying what it is `needed_for`, for a
    ticket without one."""
    if ticket.company is None or ticket.company.id is None:
        raise Refused(f"Ticket {ticket.id} has no company, so no {needed_for} can be chosen for it.")
    return Company(id=ticket.company.id, identifier=ticket.company.identifier, name=label(ticket.company))


def info_date(ticket: Ticket, key: str) -> datetime | None:
    """`dateEntered`/`lastUpdated` from the ticket's `_info`; None when absent or unreadable."""
    return read_moment(ticket.info.get(key))
