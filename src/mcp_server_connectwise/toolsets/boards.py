"""Toolset `boards`: the service boards and the statuses of each."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator

from mcp_server_connectwise.services import boards
from mcp_server_connectwise.services.arguments import not_a_yes_no
from mcp_server_connectwise.services.boards import Boards, BoardStatuses
from mcp_server_connectwise.services.errors import Look
from mcp_server_connectwise.toolsets.definition import ToolCall, ToolDefinition, Toolset


async def list_boards(call: ToolCall) -> Boards:
    """List the active service boards: the names the other tools take (rarely the ones guessed, e.g.
    "Service Desk", not "Helpdesk")."""
    return await boards.list_boards(call.session)


async def list_board_statuses(
    call: ToolCall,
    board: Annotated[str | int, BeforeValidator(not_a_yes_no)],
) -> BoardStatuses:
    """List a service board's statuses in board order: the names a ticket on that board can take. A closed
    status closes the ticket; the default one is a new ticket's."""
    return await boards.list_board_statuses(call.session, board)


TOOLSET = Toolset(
    "boards",
    "see the service boards and their statuses",
    reads=(
        ToolDefinition(
            list_boards,
            title="List the service boards",
            read_only=True,
            purpose="see the boards",
            examples=({},),
            next_tools=("list_board_statuses", "search_tickets"),
            untrusted_output=False,
        ),
        ToolDefinition(
            list_board_statuses,
            title="List a board's statuses",
            read_only=True,
            purpose="see a board's statuses",
            provides=Look.BOARD_STATUSES,
            examples=({"board": "Service Desk"},),
            next_tools=("update_ticket", "search_tickets"),
            untrusted_output=False,
        ),
    ),
)
