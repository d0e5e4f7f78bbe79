"""Contacts: a company's contact by name, email or id (one request to find one), contact searches, one contact.

ConnectWise keeps a contact's name in two fields and its emails and phone numbers in `communicationItems`,
which plain `conditions` cannot reach: an email or a phone number goes through `childConditions` (API.md). A
full name is tried split both ways a name splits ("Mary Ann Smith": first "Mary Ann", last "Smith"; "Jan van
Dijk": first "Jan", last "van Dijk"); a single word matches a first or a last name. Only active contacts
match, unless a search includes inactive ones.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import NotFoundError, endpoints
from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise.models import Company, Contact, label
from mcp_server_connectwise.services import resolve
from mcp_server_connectwise.services.arguments import MAX_ID, NameOrId, not_a_yes_no
from mcp_server_connectwise.services.companies import MAX_SEARCH_TEXT, described
from mcp_server_connectwise.services.companies import company as resolve_company
from mcp_server_connectwise.services.errors import Look, Refused, shown
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

CONTACT_FIELDS = ("id", "firstName", "lastName", "company", "inactiveFlag", "title", "communicationItems")
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

    async def who_there_is() -> str:
        others = await session.client.get_page(
            endpoints.CONTACTS, conditions=of_company, fields=CONTACT_FIELDS, order_by="lastName", page_size=_CANDIDATES
        )
        listed = [Contact.model_validate(item) for item in others.items]
        who = f"its contacts include {', '.join(_shown(c) for c in listed)}" if listed else "it has no active contact"
        return f"Company {described(company)} has no active contact {shown(value)}; {who}."

    return await resolve.one_of(
        value,
        [Contact.model_validate(item) for item in page.items],
        shown_as=_shown,
        several=f"contacts of company {described(company)}",
        give="contact as one of their emails or ids",
        none=who_there_is,
        look=Look.FIND_CONTACT,
        more=page.has_next,
    )


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


# --- search_contacts and get_contact ---------------------------------------------------------------------


class ContactQuery(BaseModel):
    """A contact search; the filters combine with AND."""

    name: Annotated[str | None, Field(description="Full, first or last name.")] = None
    email: Annotated[str | None, Field(description='Email address, or a domain such as "@acme.example".')] = None
    phone: Annotated[str | None, Field(description='Phone number or part of it, e.g. "555-0142".')] = None
    company: Annotated[NameOrId, Field(description="Company identifier or name.")] = None
    include_inactive: Annotated[bool, Field(description="Also contacts marked inactive.")] = False
    limit: Annotated[int, Field(ge=1, le=100, description="Rows per page."), BeforeValidator(not_a_yes_no)] = 25
    page: Annotated[
        int, Field(ge=1, description="Page number, from next_page of an earlier call."), BeforeValidator(not_a_yes_no)
    ] = 1


class ContactRow(BaseModel):
    id: int
    name: UntrustedText | None = None
    company: UntrustedText | None = None
    company_identifier: str | None = None
    title: UntrustedText | None = None
    email: UntrustedText | None = Field(None, description="The default email.")
    phone: UntrustedText | None = Field(None, description="The default phone number.")
    inactive: bool | None = Field(None, description="Present (true) only for inactive contacts.")

    @classmethod
    def of(cls, contact: Contact) -> ContactRow:
        return cls(
            id=contact.id,
            name=contact.full_name or None,
            company=label(contact.company),
            company_identifier=contact.company.identifier if contact.company else None,
            title=contact.title,
            email=contact.email,
            phone=contact.phone,
            inactive=True if contact.inactive_flag else None,
        )


class ContactSearchResult(BaseModel):
    tenant: str
    contacts: list[ContactRow]
    page: int
    has_more: bool = Field(description="More contacts match: ask for next_page.")
    next_page: int | None = None
    notice: str = untrusted_notice("name, company, title, email and phone")


def _communication(email: str | None, phone: str | None) -> cw.Expr | None:
    """The childConditions on a contact's communication items: a whole address, a domain ("@acme.example")
    or a part of a phone number."""
    return cw.and_(
        (cw.contains if email.startswith("@") else cw.eq)("communicationItems/value", email) if email else None,
        cw.contains("communicationItems/value", phone) if phone else None,
    )


async def search_contacts(session: TenantSession, query: ContactQuery) -> ContactSearchResult:
    resolve.check_page(query.page)
    name, email, phone = (
        resolve.search_text(a, getattr(query, a), MAX_SEARCH_TEXT) for a in ("name", "email", "phone")
    )
    company_id = (await resolve_company(session, query.company)).id if query.company is not None else None
    try:
        conditions = cw.and_(
            cw.eq("company/id", company_id) if company_id is not None else None,
            cw.eq("inactiveFlag", False) if not query.include_inactive else None,
            _name_conditions(name) if name else None,
        )
        child_conditions = _communication(email, phone)
    except cw.UnsafeValueError as exc:
        raise Refused(f"{exc} Change the search and try again.") from None
    page = await session.client.get_page(
        endpoints.CONTACTS,
        conditions=conditions,
        child_conditions=child_conditions,
        order_by="lastName asc, firstName asc",
        fields=CONTACT_FIELDS,
        page=query.page,
        page_size=query.limit,
    )
    return ContactSearchResult(
        tenant=session.name,
        contacts=[ContactRow.of(Contact.model_validate(item)) for item in page.items],
        page=page.page,
        has_more=page.has_next,
        next_page=page.page + 1 if page.has_next else None,
    )


class CommunicationView(BaseModel):
    kind: str | None = Field(None, description="Email, Phone or Fax.")
    type: str | None = Field(None, description='e.g. "Direct", "Mobile".')
    value: UntrustedText | None = None
    default: bool | None = Field(None, description="Present (true) for the default of its kind.")


class ContactDetails(BaseModel):
    tenant: str
    id: int
    name: UntrustedText | None = None
    first_name: UntrustedText | None = None
    last_name: UntrustedText | None = None
    company: UntrustedText | None = None
    company_identifier: str | None = None
    title: UntrustedText | None = None
    inactive: bool | None = Field(None, description="Present (true) only for an inactive contact.")
    communication: list[CommunicationView] = Field(default_factory=list, description="Emails, phones and faxes.")
    notice: str = untrusted_notice("name, first_name, last_name, company, title and communication[].value")


ContactId = Annotated[int, Field(ge=1, le=MAX_ID, description="The contact's id."), BeforeValidator(not_a_yes_no)]


async def get_contact(session: TenantSession, contact_id: int) -> ContactDetails:
    try:
        contact = Contact.model_validate(await session.client.get(endpoints.contact(contact_id)))
    except NotFoundError:
        raise Refused(
            f"Contact {contact_id} was not found in tenant {session.name}; check the id.", look=Look.FIND_CONTACT
        ) from None
    return ContactDetails(
        tenant=session.name,
        id=contact.id,
        name=contact.full_name or None,
        first_name=contact.first_name,
        last_name=contact.last_name,
        company=label(contact.company),
        company_identifier=contact.company.identifier if contact.company else None,
        title=contact.title,
        inactive=True if contact.inactive_flag else None,
        communication=[
            CommunicationView(
                kind=item.communication_type,
                type=label(item.type),
                value=item.value,
                default=True if item.default_flag else None,
            )
            for item in contact.communication_items
        ],
    )
