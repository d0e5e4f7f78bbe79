"""Service boards: which exist (agents guess their names) and a board's statuses, the names a ticket on it can
take, with which of them close it or forbid time entries."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mcp_server_connectwise.connectwise.models import BoardStatus
from mcp_server_connectwise.services import catalog, resolve
from mcp_server_connectwise.services.concurrency import all_or_none
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
    statuses: list[StatusView]


async def list_board_statuses(session: TenantSession, board: str | int) -> BoardStatuses:
    found = await resolve.board(session, resolve.name_or_id("board", board))
    # Always fresh: someone asking for the list wants the truth, and a ticket update then validates against it.
    statuses, _ = await session.catalog.load(catalog.board_statuses(found.id), refresh=True)
    ordered = sorted(statuses, key=lambda status: (status.sort_order is None, status.sort_order or 0, status.id))
    return BoardStatuses(
        tenant=session.name,
        board=found.name or str(found.id),
        board_id=found.id,
        statuses=[StatusView.from_status(status) for status in ordered],
    )


class BoardView(BaseModel):
    id: int
    name: str
    default_status: str | None = Field(None, description="A new ticket's status.")


class Boards(BaseModel):
    tenant: str
    boards: list[BoardView] = Field(description="By name.")


async def list_boards(session: TenantSession) -> Boards:
    """Every active board with its default status: the boards from the cached list, each board's statuses from
    the cache that status validation uses (one request per board on a cold cache, none warm)."""
    boards, _ = await session.catalog.load(catalog.BOARDS)
    active = sorted(
        (board for board in boards if not board.inactive_flag),
        key=lambda board: ((board.name or "").casefold(), board.id),
    )
    statuses = await all_or_none(*(session.catalog.load(catalog.board_statuses(board.id)) for board in active))
    return Boards(
        tenant=session.name,
        boards=[
            BoardView(id=board.id, name=board.name or str(board.id), default_status=_default_name(loaded))
            for board, (loaded, _) in zip(active, statuses, strict=True)
        ],
    )


def _default_name(statuses: list[BoardStatus]) -> str | None:
    return next((status.name for status in statuses if status.default_flag and not status.inactive), None)
