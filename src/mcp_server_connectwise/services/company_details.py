"""One company in full, for triage: its record with its main site and default contact, its active agreements,
its devices counted by type and its open tickets counted, in one round of concurrent requests.

The open tickets are counted by ConnectWise (`/count`). The devices are counted here, from one listing of the
company's active configurations' types (a page of 1,000 devices per request): counting each type through
`/count` would cost a request per configuration type the tenant has, usually dozens, for every company read.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Annotated

from pydantic import BaseModel, Field

from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.connectwise.models import Company, Configuration, label
from mcp_server_connectwise.services.agreements import company_agreements, last_day, not_usable_because, today
from mcp_server_connectwise.services.arguments import RecordName
from mcp_server_connectwise.services.companies import company as resolve_company
from mcp_server_connectwise.services.concurrency import all_or_none
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

# What a device of no type is counted under.
NO_TYPE = "(no type)"


class CompanyRequest(BaseModel):
    company: Annotated[
        RecordName, Field(description='Company identifier, id or name (or a unique part of it), e.g. "ACME".')
    ]


class SiteView(BaseModel):
    name: UntrustedText | None = None
    address: UntrustedText | None = Field(None, description="Street, city, state and zip, on one line.")
    country: str | None = None


class ContactReference(BaseModel):
    id: int | None = None
    name: UntrustedText | None = None


class ActiveAgreement(BaseModel):
    id: int
    name: str | None = None
    type: str | None = None
    end: date | None = Field(None, description="Last day; none: no end date.")


class CompanyDetails(BaseModel):
    tenant: str
    id: int
    identifier: str | None = None
    name: UntrustedText | None = None
    status: str | None = None
    types: list[str] = Field(default_factory=list)
    phone: UntrustedText | None = None
    website: UntrustedText | None = None
    site: SiteView | None = Field(None, description="The main site.")
    default_contact: ContactReference | None = None
    agreements: list[ActiveAgreement] = Field(description="The agreements active today.")
    configurations: int = Field(description="Active configurations (devices).")
    configurations_by_type: dict[str, int] = Field(default_factory=dict)
    open_tickets: int
    notice: str = untrusted_notice("name, phone, website, site and default_contact")


def _site(company: Company) -> SiteView | None:
    place = " ".join(part for part in (company.state, company.zip) if part)
    parts = [company.address_line1, company.address_line2, company.city, place]
    address = ", ".join(part for part in parts if part)
    if company.site is None and not address:
        return None
    return SiteView(name=label(company.site), address=address or None, country=label(company.country))


async def _types_of_active_configurations(session: TenantSession, company_id: int) -> Counter[str]:
    rows = await session.client.list_all(
        endpoints.CONFIGURATIONS,
        conditions=cw.and_(cw.eq("company/id", company_id), cw.eq("activeFlag", True)),
        fields=("id", "type"),
    )
    return Counter(label(Configuration.model_validate(row).type) or NO_TYPE for row in rows)


async def get_company(session: TenantSession, request: CompanyRequest) -> CompanyDetails:
    found = await resolve_company(session, request.company)
    record, agreements, devices, open_tickets = await all_or_none(
        session.client.get(endpoints.company(found.id)),
        company_agreements(session, found),
        _types_of_active_configurations(session, found.id),
        session.client.count(
            endpoints.TICKETS, conditions=cw.and_(cw.eq("company/id", found.id), cw.eq("closedFlag", False))
        ),
    )
    company = Company.model_validate(record)
    on = today()
    return CompanyDetails(
        tenant=session.name,
        id=company.id,
        identifier=company.identifier,
        name=company.name,
        status=label(company.status),
        types=[name for kind in company.types if (name := label(kind))],
        phone=company.phone_number,
        website=company.website,
        site=_site(company),
        default_contact=ContactReference(id=company.default_contact.id, name=label(company.default_contact))
        if company.default_contact
        else None,
        agreements=[
            ActiveAgreement(
                id=a.id,
                name=a.name,
                type=label(a.type),
                end=last_day(a),
            )
            for a in agreements
            if not_usable_because(a, on) is None
        ],
        configurations=sum(devices.values()),
        configurations_by_type=dict(sorted(devices.items())),
        open_tickets=open_tickets,
    )
