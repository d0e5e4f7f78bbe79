"""The lenient read models accept real ConnectWise bodies (reference/connectwise/examples/misc_examples.json)."""

from __future__ import annotations

from datetime import datetime, timezone

from mcp_server_connectwise.connectwise.models import BoardStatus, ServiceNote, Ticket, TimeEntry


def test_board_statuses_read_by_alias_and_missing_fields_are_none() -> None:
    body = [
        {"id": 1, "name": "New", "board": {"id": 1}, "sortOrder": 0, "displayOnBoard": True, "inactive": False,
         "closedStatus": False, "timeEntryNotAllowed": False},
        {"id": 2, "name": "In Progress", "board": {"id": 1}, "sortOrder": 1, "displayOnBoard": True,
         "inactive": False, "closedStatus": True},
    ]
    new, in_progress = [BoardStatus.model_validate(row) for row in body]
    assert new.board is not None and new.board.id == 1 and new.closed_status is False
    assert in_progress.closed_status is True and in_progress.time_entry_not_allowed is None


def test_note_and_time_entry_keep_info_and_parse_dates() -> None:
    note = ServiceNote.model_validate({
        "id": 3, "ticketId": 69, "text": "Some Text On This Note", "detailDescriptionFlag": True,
        "internalAnalysisFlag": False, "member": {"id": 7, "identifier": "jdoe", "name": "Jane Doe"},
        "dateCreated": "2010-09-18T17:10:37Z", "createdBy": "helpdesk2",
        "_info": {"lastUpdated": "2010-09-18T17:10:37Z", "updatedBy": "helpdesk2"},
    })
    assert note.ticket_id == 69 and note.member is not None and note.member.identifier == "jdoe"
    assert note.date_created == datetime(2010, 9, 18, 17, 10, 37, tzinfo=timezone.utc)
    assert note.info["updatedBy"] == "helpdesk2"

    entry = TimeEntry.model_validate({
        "id": 2, "chargeToId": 69, "chargeToType": "ServiceTicket", "workType": {"id": 3, "name": "Regular"},
        "timeStart": "2005-05-16T08:00:00Z", "timeEnd": "2005-05-16T10:00:00Z", "actualHours": 2,
        "billableOption": "Billable", "hourlyRate": 100,
    })
    assert entry.work_type is not None and entry.work_type.name == "Regular" and entry.actual_hours == 2


def test_ticket_ignores_unknown_fields_and_accepts_python_names() -> None:
    ticket = Ticket.model_validate({
        "id": 5, "summary": "Printer on fire", "recordType": "ServiceTicket", "board": {"id": 1, "name": "Service Desk"},
        "status": {"id": 2, "name": "New", "_info": {}}, "company": {"id": 9, "identifier": "ACME", "name": "Acme"},
        "subType": {"id": 4, "name": "Hardware"}, "closedFlag": False, "slaStatus": "Respond by Mon 09:00",
        "respondMinutes": 0, "someFutureField": {"x": 1},
    })
    assert ticket.record_type == "ServiceTicket" and ticket.company is not None and ticket.company.identifier == "ACME"
    assert ticket.sub_type is not None and ticket.sub_type.name == "Hardware" and ticket.sla_status.startswith("Respond")
    assert Ticket(id=6, closed_flag=True).closed_flag is True
