"""Write recovery as the model and the audit log see it: a confirmed write is done, an unknown one says so."""

from __future__ import annotations

import pytest

from mcp_server_connectwise.connectwise import retry
from mcp_server_connectwise.services import write_recovery

from support.faults import script_faults
from support.harness import make_harness

NOTE = {"ticket_id": 1001, "text": "Rebooted the router."}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(write_recovery, "RECHECK_SECONDS", 0.0)
    monkeypatch.setattr(retry, "backoff", lambda *args, **kwargs: 0.0)


def saved(harness, text: str) -> list[dict]:
    return [note for note in harness.store()["notes"].values() if note["text"] == text]


async def test_a_note_whose_answer_was_lost_is_reported_done_once_found(tmp_path):
    harness = make_harness(tmp_path)
    script_faults(harness.sandboxes["acme"], post=["drop_after_commit"])
    async with harness.client() as client:
        result = await client.call_tool("add_ticket_note", NOTE)
    assert result.is_error is False
    [note] = saved(harness, NOTE["text"])
    assert result.structured_content["note_id"] == note["id"]
    assert [r["method"] for r in harness.requests()] == ["POST", "GET"]  # found, not re-sent
    line = harness.audit()[-1]
    assert line["outcome"] == "ok" and [record["id"] for record in line["written"]] == [note["id"]]
    assert [r["method"] for r in line["requests"]] == ["POST", "GET"]


async def test_a_server_error_on_a_note_is_looked_into_and_sent_once_more(tmp_path):
    harness = make_harness(tmp_path)
    script_faults(harness.sandboxes["acme"], post=["error_500"])
    async with harness.client() as client:
        result = await client.call_tool("add_ticket_note", NOTE)
    assert result.is_error is False and len(saved(harness, NOTE["text"])) == 1
    assert [r["method"] for r in harness.requests()] == ["POST", "GET", "POST"]
    assert harness.audit()[-1]["outcome"] == "ok"


async def test_a_write_whose_outcome_cannot_be_found_out_is_reported_and_audited_as_unknown(tmp_path):
    harness = make_harness(tmp_path)
    script_faults(harness.sandboxes["acme"], post=["drop_after_commit"], get=["error_503"] * 4)
    async with harness.client() as client:
        result = await client.call_tool("add_ticket_note", NOTE)
    text = result.content[0].text
    assert result.is_error
    assert "It is unknown whether the note was saved on ticket 1001 (tenant acme)" in text
    assert (
        "may or may not have been written; check the ticket's notes before sending it again. "
        "Use get_ticket_details to read the ticket." in text
    )
    assert [r["method"] for r in harness.requests()].count("POST") == 1  # not re-sent blind
    line = harness.audit()[-1]
    assert line["outcome"] == "unknown" and line["written"] == [] and "may or may not" in line["error"]


async def test_two_lost_sends_that_did_not_land_are_reported_failed(tmp_path):
    harness = make_harness(tmp_path)
    script_faults(harness.sandboxes["acme"], post=["drop_before", "drop_before"])
    async with harness.client() as client:
        result = await client.call_tool("add_ticket_note", NOTE)
    assert result.is_error and "nothing was written" in result.content[0].text
    assert saved(harness, NOTE["text"]) == []
    assert harness.audit()[-1]["outcome"] == "error"
