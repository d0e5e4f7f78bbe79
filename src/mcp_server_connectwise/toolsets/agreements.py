"""Toolset `agreements`: a company's agreements (contracts), and which a ticket can be put under."""

from __future__ import annotations

from mcp_server_connectwise.services import agreements
from mcp_server_connectwise.services.agreements import AgreementQuery, Agreements
from mcp_server_connectwise.services.errors import Look
from mcp_server_connectwise.toolsets.definition import Hint, ToolCall, ToolDefinition, Toolset


async def list_agreements(call: ToolCall, query: AgreementQuery) -> Agreements:
    """List a company's agreements with type, status, dates and SLA; by default only those active today (not
    cancelled, started, not past their end date), which are the ones a ticket can be put under."""
    return await agreements.list_agreements(call.session, query)


def _hint(result: Agreements) -> Hint:
    if not result.agreements:
        return Hint("The company has no agreement active today (include_inactive=true lists the others).", then=False)
    return Hint()


TOOLSET = Toolset(
    "agreements",
    "see companies' agreements",
    reads=(
        ToolDefinition(
            list_agreements,
            title="List a company's agreements",
            read_only=True,
            idempotent=True,
            purpose="see a company's agreements",
            provides=Look.AGREEMENTS,
            hint=_hint,
            examples=({"company": "ACME"},),
            next_tools=("update_ticket", "create_ticket"),
        ),
    ),
)
