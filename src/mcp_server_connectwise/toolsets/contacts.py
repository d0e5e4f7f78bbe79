"""Toolset `contacts`: find the people of a tenant's customers and read one."""

from __future__ import annotations

from mcp_server_connectwise.services import contacts
from mcp_server_connectwise.services.contacts import ContactDetails, ContactId, ContactQuery, ContactSearchResult
from mcp_server_connectwise.services.errors import Look
from mcp_server_connectwise.toolsets.definition import Hint, ToolCall, ToolDefinition, Toolset


async def search_contacts(call: ToolCall, query: ContactQuery) -> ContactSearchResult:
    """Find contacts by name, email, phone or company; only active ones unless include_inactive. One
    ConnectWise request per call, plus the company list when a company is named and not cached."""
    return await contacts.search_contacts(call.session, query)


def _search_hint(result: ContactSearchResult) -> Hint:
    if result.has_more:
        return Hint(f"More contacts match: call again with page={result.next_page}, or narrow the search.")
    if not result.contacts:
        return Hint("No contact matches; loosen the filters (a name matches a whole first or last name).", then=False)
    return Hint()


async def get_contact(call: ToolCall, contact_id: ContactId) -> ContactDetails:
    """Read a contact: name, company, title and every email, phone and fax with its default flag."""
    return await contacts.get_contact(call.session, contact_id)


TOOLSET = Toolset(
    "contacts",
    "find and read contacts",
    reads=(
        ToolDefinition(
            search_contacts,
            title="Search contacts",
            read_only=True,
            idempotent=True,
            purpose="find contacts",
            provides=Look.FIND_CONTACT,
            hint=_search_hint,
            examples=({"email": "bjorn.angstrom@acme.example"},),
            next_tools=("get_contact", "create_ticket"),
            free_text=frozenset({"name", "email", "phone"}),
        ),
        ToolDefinition(
            get_contact,
            title="Read a contact",
            read_only=True,
            idempotent=True,
            purpose="read a contact",
            examples=({"contact_id": 3},),
            next_tools=("get_company", "create_ticket"),
        ),
    ),
)
