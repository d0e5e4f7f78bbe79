"""Text written into ConnectWise (notes, time entry notes, a summary): control characters are refused with a
sentence, invisible ones stripped, line breaks kept; a note has a documented maximum length."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from mcp_server_connectwise.services.errors import Refused
from mcp_server_connectwise.services.notes import MAX_NOTE_CHARS, NoteRequest, add_ticket_note
from mcp_server_connectwise.services.time_entries import create_time_entry
from mcp_server_connectwise.services.updates import update_ticket

from support.harness import sandbox_app, sandbox_session
from support.requests import changes, entry, note

TICKET = 1003  # an open Service Desk ticket whose status allows time entries
START = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("Rebooted\x00 the server.", "text contains the control character U+0000 at character 9; remove it"),
        ("\x1b[31mred\x1b[0m", "U+001B at character 1"),
        ("line one\rline two", "U+000D at character 9"),  # a carriage return outside a CRLF line break
        ("bell\x07", "U+0007"),
        ("next line\x85", "U+0085"),
    ],
)
async def test_a_note_with_a_control_character_is_refused_before_any_request(text, refusal):
    app = sandbox_app()
    with pytest.raises(Refused, match=re.escape(refusal)) as refused:
        await add_ticket_note(sandbox_session(app), note(TICKET, text))
    assert str(refused.value).endswith("(line breaks and tabs are the only control characters text can hold).")
    assert app.state.request_log == []


async def test_line_breaks_and_tabs_are_kept_and_invisible_characters_stripped():
    app = sandbox_app()
    added = await add_ticket_note(sandbox_session(app), note(TICKET, "Step 1:\tcheck\r\nStep 2:\u200b done\n"))
    assert app.state.store["notes"][added.note_id]["text"] == "Step 1:\tcheck\nStep 2: done"


async def test_a_note_longer_than_its_maximum_is_refused_and_one_at_it_is_written():
    app = sandbox_app()
    session = sandbox_session(app)
    with pytest.raises(Refused) as refused:
        await add_ticket_note(session, note(TICKET, "x" * (MAX_NOTE_CHARS + 1)))
    assert str(refused.value) == (
        "The note is 20,001 characters long, more than the 20,000 a note can have; shorten it or split it into "
        "several notes."
    )
    assert app.state.request_log == []
    added = await add_ticket_note(session, note(TICKET, "x" * MAX_NOTE_CHARS + "\u200b"))  # counted once cleaned
    assert len(app.state.store["notes"][added.note_id]["text"]) == MAX_NOTE_CHARS
    assert "at most 20,000 characters" in NoteRequest.model_json_schema()["properties"]["text"]["description"].lower()


@pytest.mark.parametrize("argument", ["notes", "internal_notes"])
async def test_time_entry_notes_with_a_control_character_are_refused_before_any_request(argument):
    app = sandbox_app()
    with pytest.raises(Refused, match=f"^{argument} contains the control character U\\+0001 at character 5"):
        await create_time_entry(sandbox_session(app), entry(TICKET, START, hours=1, **{argument: "Done\x01."}))
    assert app.state.request_log == []


async def test_a_summary_with_a_control_character_is_refused_before_any_request():
    app = sandbox_app()
    with pytest.raises(Refused, match="^summary contains the control character U\\+0000 at character 8"):
        await update_ticket(sandbox_session(app), changes(TICKET, summary="Printer\x00 jams"))
    assert app.state.request_log == []
    updated = await update_ticket(sandbox_session(app), changes(TICKET, summary="Printer\u200b jams\non A4"))
    assert updated.changes[0].after == "Printer jams on A4"


def test_note_type_is_taken_in_any_case():
    assert NoteRequest.model_validate({"ticket_id": 1, "text": "x", "note_type": " Discussion"}).note_type == (
        "discussion"
    )
    assert NoteRequest.model_json_schema()["properties"]["note_type"]["enum"] == [
        "internal",
        "discussion",
        "resolution",
    ]
