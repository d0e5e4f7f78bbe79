"""Companies (a tenant's customers) by identifier or name, against the tenant's cached company list.

An agent says "Acme"; ConnectWise wants the company's id. The match is, in order: the exact identifier
("ACME"), the exact name ("Acme Corporation"), the id, then a name that contains the text, if only one does.
Several partial matches are refused with the candidates and their identifiers, so the caller can pick one;
no match is refused with the closest names. Text compares case-insensitively, whitespace collapsed.

The list is a cached catalog (ids, identifiers and names only): one request per 1,000 companies on a cold
cache, none when warm, and a miss refreshes it once, as a company created since the cache was filled would
otherwise be refused.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.connectwise.models import Company
from mcp_server_connectwise.services import resolve
from mcp_server_connectwise.services.catalog import ReferenceList
from mcp_server_connectwise.services.errors import Refused, shown
from mcp_server_connectwise.services.tenancy import TenantSession

COMPANIES = ReferenceList(endpoints.COMPANIES, Company, ("id", "identifier", "name", "deletedFlag"))
# How many candidates or close names a refusal lists.
_LISTED = 8


def described(company: Company) -> str:
    """How a sentence names a company: `Acme Corporation (ACME)`."""
    return f"{company.name or company.identifier or company.id} ({company.identifier or company.id})"


def _match(companies: Sequence[Company], value: str | int) -> Company | list[Company] | None:
    """The company `value` names, the candidates when several names contain it, or None."""
    wanted = resolve.normalise(str(value))
    for key in (lambda c: c.identifier, lambda c: c.name):
        exact = [c for c in companies if (text := key(c)) is not None and resolve.normalise(text) == wanted]
        if exact:
            return exact[0]
    wanted_id = resolve.as_id(value)
    by_id = next((c for c in companies if c.id == wanted_id), None) if wanted_id is not None else None
    if by_id is not None:
        return by_id
    partial = [c for c in companies if c.name and wanted in resolve.normalise(c.name)]
    if len(partial) == 1:
        return partial[0]
    return partial or None


async def company(session: TenantSession, value: str | int, argument: str = "company") -> Company:
    """The tenant's (not deleted) company that `value` names; refused, with candidates or close names, when
    none or several do."""
    resolve.name_or_id(argument, value)
    companies, fresh = await session.catalog.load(COMPANIES)
    found = _match([c for c in companies if not c.deleted_flag], value)
    if found is None and not fresh:
        companies, _ = await session.catalog.load(COMPANIES, refresh=True)
        found = _match([c for c in companies if not c.deleted_flag], value)
    if isinstance(found, Company):
        return found
    if found:
        listed = ", ".join(described(c) for c in found[:_LISTED])
        more = f" and {len(found) - _LISTED} more" if len(found) > _LISTED else ""
        raise Refused(
            f"{shown(value)} matches {len(found)} companies in tenant {session.name}: {listed}{more}; "
            f"give {argument} as one of their identifiers."
        )
    by_name = {resolve.normalise(c.name): c for c in companies if c.name and not c.deleted_flag}
    close = difflib.get_close_matches(resolve.normalise(str(value)), list(by_name), n=_LISTED, cutoff=0.4)
    closest = f"; the closest names: {', '.join(described(by_name[n]) for n in close)}" if close else ""
    raise Refused(f"There is no company {shown(value)} in tenant {session.name}{closest}.")
