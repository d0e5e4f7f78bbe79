"""A board's statuses: what update_ticket accepts and which statuses forbid time entries."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mcp_server_connectwise.connectwise.models import BoardStatus
from mcp_server_connectwise.services import catalog, resolve
from mcp_server_connectwise.services.tenancy import TenantSession


class StatusView(BaseModel):
    id: int
    name: str
    closed: bool = False
    time_entry_not_allowed: bool = False
    default: bool = False
    sort_order: int | None = None
    inactive: bool = Field(False, description="Inactive statuses cannot be set.")

    @classmethod
    def from_status(cls, status: BoardStatus) -> StatusView:
        return cls(
            id=status.id,
            name=status.name or "",
            closed=bool(status.closed_status),
            time_entry_not_allowed=bool(status.time_entry_not_allowed),
            default=bool(status.default_flag),
            sort_order=status.sort_order,
            inactive=bool(status.inactive),
        )


class BoardStatuses(BaseModel):
    tenant: str
    board: str
    board_id: int
    statuses: list[StatusView] = Field(description="In board order.")
    next_steps: str


async def list_board_statuses(session: TenantSession, board: str | int) -> BoardStatuses:
    found = await resolve.board(session, resolve.name_or_id("board", board))
    # Always fresh: someone asking for the list wants the truth, and update_ticket then validates against it.
    statuses, _ = await session.catalog.load(catalog.board_statuses(found.id), refresh=True)
    ordered = sorted(statuses, key=lambda status: (status.sort_order is None, status.sort_order or 0, status.id))
    return BoardStatuses(
        tenant=session.name,
        board=found.name or str(found.id),
        board_id=found.id,
        statuses=[StatusView.from_status(status) for status in ordered],
        next_steps="Move a ticket with update_ticket(ticket_id, status=NAME); closed statuses close the ticket.",
    )
