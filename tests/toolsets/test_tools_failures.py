"""System faults reach the model as one honest sentence and are audited as errors, not refusals.

(Writes whose answer is lost are recovered by looking first: see test_write_recovery*.py.)"""

from __future__ import annotations

from support.harness import make_harness


async def test_a_server_error_that_outlasts_the_retries_says_to_try_later(tmp_path):
    harness = make_harness(tmp_path)
    harness.sandboxes["acme"].state.faults.fail_next("error_500", count=10)
    async with harness.client() as client:
        result = await client.call_tool("list_board_statuses", {"board": "Service Desk"})
    assert result.is_error and "ConnectWise failed on its side (HTTP 500) for tenant acme; try again later." in (
        result.content[0].text
    )
    assert harness.audit()[-1]["outcome"] == "error"
    assert all(request["method"] == "GET" for request in harness.requests())  # a read, retried, never a write
