"""A company's contacts by name, email or id: one request to find one.

ConnectWise keeps a contact's name in two fields and its emails in `communicationItems`, which plain
`conditions` cannot reach: an email goes through `childConditions` (API.md). A full name is tried split
both ways a name splits ("Mary Ann Smith": first "Mary Ann", last "Smith"; "Jan van Dijk": first "Jan",
last "van Dijk"); a single word matches a first or a last name. Only active contacts of the company match.
"""

from __future__ import annotations

from mcp_server_connectwise.connectwise import NotFoundError, endpoints
from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise.models import Company, Contact
from mcp_server_connectwise.services import resolve
from mcp_server_connectwise.services.companies import described
from mcp_server_connectwise.services.errors import Refused, shown
from mcp_server_connectwise.services.tenancy import TenantSession

CONTACT_FIELDS = ("id", "firstName", "lastName", "company", "inactiveFlag", "communicationItems")
# Candidates a request reads and a refusal lists.
_CANDIDATES = 10


def _name_conditions(name: str) -> cw.Expr | None:
    words = name.split(" ")
    if len(words) == 1:
        return cw.or_(cw.eq("firstName", name), cw.eq("lastName", name))
    splits = {(" ".join(words[:-1]), words[-1]), (words[0], " ".join(words[1:]))}
    return cw.or_(*(cw.and_(cw.eq("firstName", first), cw.eq("lastName", last)) for first, last in sorted(splits)))


def _shown(contact: Contact) -> str:
    return f"{contact.full_name or contact.id} ({contact.email or f'id {contact.id}'})"


async def contact(session: TenantSession, company: Company, value: str | int) -> Contact:
    """The active contact of `company` that `value` (a name, an email or an id) names; refused when none or
    several do, with who there is."""
    resolve.name_or_id("contact", value)
    contact_id = resolve.as_id(value)
    if contact_id is not None:
        return await _by_id(session, company, contact_id)
    text = resolve.collapse(str(value))
    of_company = cw.and_(cw.eq("company/id", company.id), cw.eq("inactiveFlag", False))
    try:
        if "@" in text:
            page = await session.client.get_page(
                endpoints.CONTACTS,
                conditions=of_company,
                child_conditions=cw.eq("communicationItems/value", text),
                fields=CONTACT_FIELDS,
                page_size=_CANDIDATES,
            )
        else:
            page = await session.client.get_page(
                endpoints.CONTACTS,
                conditions=cw.and_(of_company, _name_conditions(text)),
                fields=CONTACT_FIELDS,
                page_size=_CANDIDATES,
            )
    except cw.UnsafeValueError as exc:
        raise Refused(f"{exc} Give the contact's name or email as ConnectWise shows it.") from None
    found = [Contact.model_validate(item) for item in page.items]
    if len(found) == 1:
        return found[0]
    if found:
        raise Refused(
            f"{shown(value)} matches {'more than ' if page.has_next else ''}{len(found)} contacts of company "
            f"{described(company)}: {', '.join(_shown(c) for c in found)}; give contact as one of their emails "
            "or ids."
        )
    others = await session.client.get_page(
        endpoints.CONTACTS, conditions=of_company, fields=CONTACT_FIELDS, order_by="lastName", page_size=_CANDIDATES
    )
    listed = [Contact.model_validate(item) for item in others.items]
    who = f"its contacts include {', '.join(_shown(c) for c in listed)}" if listed else "it has no active contact"
    raise Refused(f"Company {described(company)} has no active contact {shown(value)}; {who}.")


async def _by_id(session: TenantSession, company: Company, contact_id: int) -> Contact:
    try:
        found = Contact.model_validate(await session.client.get(endpoints.contact(contact_id)))
    except NotFoundError:
        found = None
    if found is None or found.company is None or found.company.id != company.id:
        raise Refused(
            f"Contact {contact_id} is not a contact of company {described(company)} in tenant {session.name}."
        )
    if found.inactive_flag:
        raise Refused(f"Contact {contact_id} ({found.full_name}) of company {described(company)} is inactive.")
    return found
