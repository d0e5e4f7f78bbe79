"""Toolset `companies`: find a tenant's customers and read one with what triage needs of it."""

from __future__ import annotations

from mcp_server_connectwise.services import companies, company_details
from mcp_server_connectwise.services.companies import CompanyQuery, CompanySearchResult
from mcp_server_connectwise.services.company_details import CompanyDetails, CompanyRequest
from mcp_server_connectwise.services.errors import Look
from mcp_server_connectwise.toolsets.definition import Hint, ToolCall, ToolDefinition, Toolset


async def search_companies(call: ToolCall, query: CompanyQuery) -> CompanySearchResult:
    """Find companies (customers) by name, identifier, status or type; deleted ones are never listed. One
    ConnectWise request per call."""
    return await companies.search_companies(call.session, query)


def _search_hint(result: CompanySearchResult) -> Hint:
    if result.has_more:
        return Hint(f"More companies match: call again with page={result.next_page}, or narrow the search.")
    if not result.companies:
        return Hint("No company matches; loosen the filters (name matches any part of a name).", then=False)
    return Hint()


async def get_company(call: ToolCall, request: CompanyRequest) -> CompanyDetails:
    """Read a company: status, types, main site, default contact, the agreements active today, its active
    devices counted by type and its open tickets counted. One round of concurrent requests."""
    return await company_details.get_company(call.session, request)


TOOLSET = Toolset(
    "companies",
    "find and read companies (customers)",
    reads=(
        ToolDefinition(
            search_companies,
            title="Search companies",
            read_only=True,
            idempotent=True,
            purpose="find companies",
            provides=Look.FIND_COMPANY,
            hint=_search_hint,
            examples=({"name": "acme"},),
            next_tools=("get_company", "search_contacts"),
        ),
        ToolDefinition(
            get_company,
            title="Read a company",
            read_only=True,
            idempotent=True,
            purpose="read a company in full",
            examples=({"company": "ACME"},),
            next_tools=("list_agreements", "search_contacts", "search_tickets", "create_ticket"),
        ),
    ),
)
