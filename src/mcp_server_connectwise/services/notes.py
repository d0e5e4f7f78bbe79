"""Writing a note on a ticket."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from mcp_server_connectwise.connectwise import NotFoundError
from mcp_server_connectwise.services.errors import Refused
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.tickets import ticket_not_found, ticket_path
from mcp_server_connectwise.untrusted import strip_invisible

NoteType = Literal["internal", "discussion", "resolution"]

# ConnectWise files a note under sections by three flags; exactly one is set per note type.
SECTION_FLAGS: dict[str, str] = {
    "discussion": "detailDescriptionFlag",
    "internal": "internalAnalysisFlag",
    "resolution": "resolutionFlag",
}


class NoteAdded(BaseModel):
    tenant: str
    ticket_id: int
    note_id: int
    note_type: NoteType
    visible_to_customer: bool = Field(description="Discussion and resolution notes show on the customer portal.")
    notified: bool = Field(description="ConnectWise was asked to send its notifications (processNotifications).")
    next_steps: str


def note_body(text: str, note_type: NoteType, notify: bool) -> dict:
    return {
        "text": text,
        **{flag: section == note_type for section, flag in SECTION_FLAGS.items()},
        "processNotifications": notify,
    }


async def add_ticket_note(
    session: TenantSession, ticket_id: int, text: str, note_type: NoteType = "internal", notify: bool = False
) -> NoteAdded:
    # Hidden characters in an agent's note would reach people (and other agents) unseen.
    text = strip_invisible(text).strip()
    if not text:
        raise Refused("The note is empty; put the note's words in text.")
    try:
        created = await session.client.post(f"{ticket_path(ticket_id)}/notes", note_body(text, note_type, notify))
    except NotFoundError:
        raise ticket_not_found(session, ticket_id) from None
    return NoteAdded(
        tenant=session.name,
        ticket_id=ticket_id,
        note_id=created["id"],
        note_type=note_type,
        visible_to_customer=note_type != "internal",
        notified=notify,
        next_steps="Read the ticket back with get_ticket_details, or change its status with update_ticket.",
    )
