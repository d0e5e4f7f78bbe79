"""System faults reach the model as one honest sentence and are audited as errors, not refusals."""

from __future__ import annotations

from test_server_harness import make_harness


async def test_a_write_whose_answer_is_lost_is_reported_as_of_unknown_outcome(tmp_path):
    harness = make_harness(tmp_path)
    notes_before = len(harness.store()["notes"])
    harness.sandboxes["acme"].state.faults.fail_next("drop_after_commit")
    async with harness.client() as client:
        result = await client.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "Rebooted the router."})
    assert result.is_error
    text = result.content[0].text
    assert "unknown whether it was applied" in text and "do not resend blindly" in text
    assert len(harness.store()["notes"]) == notes_before + 1  # it was saved: hence "unknown", not "failed"
    assert [r["method"] for r in harness.requests()].count("POST") == 1  # and it was not re-sent
    line = harness.audit()[-1]
    assert line["outcome"] == "error" and line["written"] == []


async def test_a_server_error_on_a_write_says_to_try_later(tmp_path):
    harness = make_harness(tmp_path)
    harness.sandboxes["acme"].state.faults.fail_next("error_500")
    async with harness.client() as client:
        result = await client.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "x"})
    assert result.is_error and "ConnectWise failed on its side (HTTP 500) for tenant acme; try again later." in (
        result.content[0].text)
    assert harness.audit()[-1]["outcome"] == "error"
