"""Toolset `boards`: the service boards and the statuses of each."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from mcp_server_connectwise.services import boards
from mcp_server_connectwise.services.arguments import not_a_yes_no
from mcp_server_connectwise.services.boards import Boards, BoardStatuses
from mcp_server_connectwise.services.errors import Look
from mcp_server_connectwise.toolsets.definition import ToolCall, ToolDefinition, Toolset


async def list_boards(call: ToolCall) -> Boards:
    """List every active service board with its default status: the board names the other tools accept
    (rarely the ones guessed, e.g. "Service Desk", not "Helpdesk")."""
    return await boards.list_boards(call.session)


async def list_board_statuses(
    call: ToolCall,
    board: Annotated[
        str | int, Field(description='Board name (any case) or id, e.g. "Service Desk".'), BeforeValidator(not_a_yes_no)
    ],
) -> BoardStatuses:
    """List every status of a service board in board order, with id, name, closed, timeEntryNotAllowed,
    default and sort order: the names a ticket on that board can take. Closed statuses close the ticket."""
    return await boards.list_board_statuses(call.session, board)


TOOLSET = Toolset(
    "boards",
    "see the service boards and their statuses",
    reads=(
        ToolDefinition(
            list_boards,
            title="List the service boards",
            read_only=True,
            idempotent=True,
            purpose="see the boards",
            examples=({},),
            next_tools=("list_board_statuses", "search_tickets"),
            untrusted_output=False,
        ),
        ToolDefinition(
            list_board_statuses,
            title="List a board's statuses",
            read_only=True,
            idempotent=True,
            purpose="see a board's statuses",
            provides=Look.BOARD_STATUSES,
            examples=({"board": "Service Desk"},),
            next_tools=("update_ticket", "search_tickets"),
            untrusted_output=False,
        ),
    ),
)
