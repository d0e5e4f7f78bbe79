"""Board tools: the statuses of a board."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from mcp_server_connectwise.services import boards
from mcp_server_connectwise.services.boards import BoardStatuses
from mcp_server_connectwise.tools.base import ToolCall, ToolDefinition
from mcp_server_connectwise.tools.arguments import not_a_yes_no


async def list_board_statuses(
    call: ToolCall,
    board: Annotated[str | int, Field(description='Board name (any case) or id, e.g. "Service Desk".'),
                     BeforeValidator(not_a_yes_no)],
) -> BoardStatuses:
    """List every status of a service board in board order, with id, name, closed, timeEntryNotAllowed,
    default and sort order: the names update_ticket accepts for tickets on that board.

    Example: {"board": "Service Desk"}.
    """
    return await boards.list_board_statuses(call.session, board)


TOOLS = [
    ToolDefinition(list_board_statuses, title="List a board's statuses", toolset="boards", read_only=True,
                   idempotent=True, untrusted_output=False),
]
