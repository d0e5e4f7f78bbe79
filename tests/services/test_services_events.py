"""A verified callback as an event: what its summary keeps of the record, cleaned, and nothing it cannot read."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from mcp_server_connectwise.connectwise.callbacks import parse_payload
from mcp_server_connectwise.services.events import event_of

from support.paths import EXAMPLES_DIR

RECORDED = json.loads((EXAMPLES_DIR / "callback_payloads.json").read_text(encoding="utf-8"))
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


def payload(**changes):
    return parse_payload(json.dumps(RECORDED["updated"] | changes).encode())


def test_a_ticket_keeps_its_summary_board_status_company_and_priority_cleaned():
    ticket = {
        "id": 7,
        "summary": "Line\none\u200b two\x07",
        "board": {"id": 1, "name": " Service  Desk "},
        "status": {"id": 2, "name": "New"},
        "company": {"id": 3, "identifier": "ACME"},
        "priority": "not a reference",
        "_info": {"lastUpdated": "2026-11-02T08:59:00Z"},
    }
    event = event_of("acme", payload(Type="Ticket", ID=7, Entity=json.dumps(ticket)), NOW)
    assert (event.type, event.action, event.record_id, event.board) == ("ticket", "updated", 7, "Service Desk")
    assert event.fields == {
        "by": "Aurasell",
        "updated": "2026-11-02T08:59:00+00:00",
        "summary": "Line one two",
        "status": "New",
        "company": "ACME",
    }


def test_a_time_entry_keeps_its_ticket_and_hours():
    entry = {"id": 9, "chargeToId": 7, "chargeToType": "ServiceTicket", "actualHours": 1.5, "ticketBoard": "Alerts"}
    event = event_of("acme", payload(Type="time", ID=9, Entity=json.dumps(entry)), NOW)
    assert event.board == "Alerts" and event.fields == {"by": "Aurasell", "ticket_id": 7, "hours": 1.5}
    entry["chargeToType"] = "Company"
    assert "ticket_id" not in event_of("acme", payload(Type="time", ID=9, Entity=json.dumps(entry)), NOW).fields


def test_a_delete_or_an_entity_it_cannot_read_is_an_event_without_a_summary():
    deleted = event_of("acme", parse_payload(json.dumps(RECORDED["deleted"]).encode()), NOW)
    assert (deleted.action, deleted.record_id, deleted.fields) == ("deleted", 57962, {"by": "Aurasell"})
    garbled = event_of("acme", payload(Type="ticket", Entity="{not json"), NOW)
    assert garbled.fields == {"by": "Aurasell"} and garbled.board is None
    other = event_of("acme", payload(), NOW)  # a contact: its type, action and id, and when it changed
    assert other.type == "contact" and other.fields == {"by": "Aurasell", "updated": "2026-06-09T21:59:49+00:00"}
