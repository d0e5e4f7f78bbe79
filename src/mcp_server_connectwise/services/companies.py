"""Companies (a tenant's customers): found by identifier or name against the tenant's cached company list,
and searched.

An agent says "Acme"; ConnectWise wants the company's id. The match is, in order: the exact identifier
("ACME"), the exact name ("Acme Corporation"), the id, then a name that contains the text, if only one does.
Several partial matches are refused with the candidates and their identifiers, so the caller can pick one;
no match is refused with the closest names. Text compares case-insensitively, whitespace collapsed.

The list is a cached catalog (ids, identifiers and names only): one request per 1,000 companies on a cold
cache, none when warm, and a miss refreshes it once, as a company created since the cache was filled would
otherwise be refused.

A search is one request: name, identifier and status as `conditions`, the type through `childConditions`
(a company's types are an array).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.connectwise.models import Company, label
from mcp_server_connectwise.services import resolve
from mcp_server_connectwise.services.arguments import not_a_yes_no
from mcp_server_connectwise.services.catalog import ReferenceList
from mcp_server_connectwise.services.errors import Look, Refused, shown
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

COMPANIES = ReferenceList(endpoints.COMPANIES, Company, ("id", "identifier", "name", "deletedFlag"))
# How many candidates or close names a refusal lists.
_LISTED = 8


def described(company: Company) -> str:
    """How a sentence names a company: `Acme Corporation (ACME)`."""
    return f"{company.name or company.identifier or company.id} ({company.identifier or company.id})"


def _match(companies: Sequence[Company], value: str | int) -> list[Company]:
    """The companies `value` names: the one it names exactly, else every one whose name contains it."""
    wanted = resolve.normalise(str(value))
    by_identifier = [c for c in companies if c.identifier is not None and resolve.normalise(c.identifier) == wanted]
    if by_identifier:  # identifiers are unique in ConnectWise
        return by_identifier[:1]
    by_name = [c for c in companies if c.name is not None and resolve.normalise(c.name) == wanted]
    if by_name:  # names are not: two companies of one name are both candidates
        return by_name
    wanted_id = resolve.as_id(value)
    if wanted_id is not None:  # a number is an id: "100" is not part of "100% Uptime"
        return [c for c in companies if c.id == wanted_id][:1]
    return [c for c in companies if c.name and wanted in resolve.normalise(c.name)]


async def company(session: TenantSession, value: str | int, argument: str = "company") -> Company:
    """The tenant's (not deleted) company that `value` names; refused, with candidates or close names, when
    none or several do."""
    resolve.name_or_id(argument, value)
    companies, fresh = await session.catalog.load(COMPANIES)
    found = _match([c for c in companies if not c.deleted_flag], value)
    if not found and not fresh:
        companies, _ = await session.catalog.load(COMPANIES, refresh=True)
        found = _match([c for c in companies if not c.deleted_flag], value)

    async def closest_names() -> str:
        by_name = {resolve.normalise(c.name): c for c in companies if c.name and not c.deleted_flag}
        close = difflib.get_close_matches(resolve.normalise(str(value)), list(by_name), n=_LISTED, cutoff=0.4)
        closest = f"; the closest names: {', '.join(described(by_name[n]) for n in close)}" if close else ""
        return f"There is no company {shown(value)} in tenant {session.name}{closest}."

    return await resolve.one_of(
        value,
        found,
        shown_as=described,
        several=f"companies in tenant {session.name}",
        give=f"{argument} as one of their identifiers",
        none=closest_names,
        look=Look.FIND_COMPANY,
        listed=_LISTED,
    )


# --- search_companies ------------------------------------------------------------------------------------

# Only the columns a row shows.
SEARCH_FIELDS = ("id", "identifier", "name", "status/name", "types", "phoneNumber", "defaultContact/name")
# Search text longer than this matches nothing: a company name has at most 50 characters, an identifier 30.
MAX_SEARCH_TEXT = 100


class CompanyQuery(BaseModel):
    """A company search; the filters combine with AND. Deleted companies are never listed."""

    name: Annotated[str | None, Field(description="Text the company name contains.")] = None
    identifier: Annotated[str | None, Field(description='Company identifier, e.g. "ACME" (any case).')] = None
    status: Annotated[str | None, Field(description='Company status, e.g. "Active".')] = None
    type: Annotated[str | None, Field(description='Company type, e.g. "Client".')] = None
    limit: Annotated[int, Field(ge=1, le=100, description="Rows per page."), BeforeValidator(not_a_yes_no)] = 25
    page: Annotated[
        int, Field(ge=1, description="Page number, from next_page of an earlier call."), BeforeValidator(not_a_yes_no)
    ] = 1


class CompanyRow(BaseModel):
    id: int
    identifier: str | None = None
    name: UntrustedText | None = None
    status: str | None = None
    types: list[str] = Field(default_factory=list)
    phone: UntrustedText | None = None
    default_contact: UntrustedText | None = None

    @classmethod
    def of(cls, company: Company) -> CompanyRow:
        return cls(
            id=company.id,
            identifier=company.identifier,
            name=company.name,
            status=label(company.status),
            types=[name for kind in company.types if (name := label(kind))],
            phone=company.phone_number,
            default_contact=label(company.default_contact),
        )


class CompanySearchResult(BaseModel):
    tenant: str
    companies: list[CompanyRow]
    page: int
    has_more: bool = Field(description="More companies match: ask for next_page.")
    next_page: int | None = None
    notice: str = untrusted_notice("name, phone and default_contact")


async def search_companies(session: TenantSession, query: CompanyQuery) -> CompanySearchResult:
    resolve.check_page(query.page)
    name, identifier = (
        resolve.search_text("name", query.name, MAX_SEARCH_TEXT),
        resolve.search_text("identifier", query.identifier, MAX_SEARCH_TEXT),
    )
    status = resolve.search_text("status", query.status, MAX_SEARCH_TEXT)
    kind = resolve.search_text("type", query.type, MAX_SEARCH_TEXT)
    try:
        conditions = cw.and_(
            cw.contains("name", name) if name else None,
            cw.eq("identifier", identifier) if identifier else None,
            cw.eq("status/name", status) if status else None,
            cw.eq("deletedFlag", False),
        )
        # A company's types are an array: only childConditions reach its items (API.md).
        types = cw.eq("types/name", kind) if kind else None
    except cw.UnsafeValueError as exc:
        raise Refused(f"{exc} Change the search and try again.") from None
    page = await session.client.get_page(
        endpoints.COMPANIES,
        conditions=conditions,
        child_conditions=types,
        order_by="name asc",
        fields=SEARCH_FIELDS,
        page=query.page,
        page_size=query.limit,
    )
    return CompanySearchResult(
        tenant=session.name,
        companies=[CompanyRow.of(Company.model_validate(item)) for item in page.items],
        page=page.page,
        has_more=page.has_next,
        next_page=page.page + 1 if page.has_next else None,
    )
