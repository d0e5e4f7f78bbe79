"""Writing a note on a ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from mcp_server_connectwise.connectwise import NotFoundError, endpoints
from mcp_server_connectwise.services.arguments import TicketId, any_case, written_text
from mcp_server_connectwise.services.errors import Refused
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.services.tickets import ticket_not_found
from mcp_server_connectwise.services.write_recovery import PlannedWrite, create_once, entered_since, same_text

_NoteType = Literal["internal", "discussion", "resolution"]
NoteType = Annotated[_NoteType, BeforeValidator(any_case(_NoteType))]
# [I] ConnectWise publishes no limit on a note's text (its schema has no maxLength); a ticket's notes are read
# back by people and agents, so a note is kept to what a person writes. Longer text belongs in an attachment.
MAX_NOTE_CHARS = 20_000

# ConnectWise files a note under sections by three flags; exactly one is set per note type.
SECTION_FLAGS: dict[str, str] = {
    "discussion": "detailDescriptionFlag",
    "internal": "internalAnalysisFlag",
    "resolution": "resolutionFlag",
}

# A bound on the notes read while looking for a lost one; a ticket gets far fewer within the time window.
_MAX_RECENT_NOTES = 100


class NoteRequest(BaseModel):
    ticket_id: TicketId
    text: Annotated[
        str,
        Field(
            min_length=1,
            description=f"At most {MAX_NOTE_CHARS:,} characters; no control characters but line breaks and tabs.",
        ),
    ]
    note_type: Annotated[
        NoteType,
        Field(description="discussion and resolution are customer-visible."),
    ] = "internal"
    notify: Annotated[bool, Field(description="Let ConnectWise send its notification emails.")] = False


class NoteAdded(BaseModel):
    tenant: str
    ticket_id: int
    note_id: int
    note_type: NoteType
    visible_to_customer: bool
    notified: bool


def note_body(text: str, note_type: NoteType, notify: bool) -> dict:
    return {
        "text": text,
        **{flag: section == note_type for section, flag in SECTION_FLAGS.items()},
        "processNotifications": notify,
    }


async def add_ticket_note(session: TenantSession, request: NoteRequest) -> NoteAdded:
    ticket_id, note_type, notify = request.ticket_id, request.note_type, request.notify
    # Hidden characters in an agent's note would reach people (and other agents) unseen.
    text = written_text("text", request.text).strip()
    if not text:
        raise Refused("The note is empty; put the note's words in text.")
    if len(text) > MAX_NOTE_CHARS:
        raise Refused(
            f"The note is {len(text):,} characters long, more than the {MAX_NOTE_CHARS:,} a note can have; "
            "shorten it or split it into several notes."
        )
    path = endpoints.ticket_notes(ticket_id)
    body = note_body(text, note_type, notify)

    async def find(since: datetime) -> list[dict]:
        return await _notes_like(session, path, body, since)

    write = PlannedWrite("note", path, body, f"on ticket {ticket_id}", check="the ticket's notes", find=find)
    try:
        created = await create_once(session, write)
    except NotFoundError:
        raise ticket_not_found(session, ticket_id) from None
    return NoteAdded(
        tenant=session.name,
        ticket_id=ticket_id,
        note_id=created["id"],
        note_type=note_type,
        visible_to_customer=note_type != "internal",
        notified=notify,
    )


async def _notes_like(session: TenantSession, path: str, body: dict, since: datetime) -> list[dict]:
    """The notes at `path` with the text and section flags of `body`, created at or after `since`, newest first.

    Matched here rather than in `conditions`: a note's text can hold characters no condition can express."""
    flags = list(SECTION_FLAGS.values())
    found = []
    async for note in session.client.iterate(
        path, order_by="id desc", fields=["id", "text", "dateCreated", *flags], page_size=25, limit=_MAX_RECENT_NOTES
    ):
        if not entered_since(note, "dateCreated", since):
            break  # ids grow with time: every note after this one is older still
        # bool(): a partial response may leave out a flag that is false.
        if same_text(note.get("text"), body["text"]) and all(bool(note.get(flag)) is body[flag] for flag in flags):
            found.append(note)
    return found
