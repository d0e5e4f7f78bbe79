"""Progress of long calls over MCP: a client that sends a progress token gets increasing counts of what the
call has read or written; a client that cancels the call stops it there."""

from __future__ import annotations

import anyio
import pytest

from mcp_server_connectwise.config.models import MAX_REQUESTS_PER_MINUTE
from mcp_server_connectwise.connectwise.client import MAX_PAGE_SIZE
from mcp_server_connectwise.sandbox import SandboxSettings

from support.harness import make_harness

# Enough tickets that the open ones past their deadlines (the harness runs on today's clock, a month after the
# seed's) fill three pages of candidates.
BIG = SandboxSettings(tickets=10_000)
MODES = ["auto", "legacy"]  # the 2026-07-28 era (direct dispatch in memory) and the handshake era (JSON-RPC)


def ticket_pages(harness) -> list[dict]:
    return [r for r in harness.requests() if r["method"] == "GET" and r["path"].endswith("/service/tickets")]


class Seen:
    def __init__(self) -> None:
        self.reports: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, done: float, total: float | None, message: str | None) -> None:
        self.reports.append((done, total, message))


@pytest.mark.parametrize("mode", MODES)
async def test_find_sla_risk_reports_the_tickets_read_page_by_page(tmp_path, mode):
    harness = make_harness(tmp_path, sandbox_settings={"acme": BIG})
    seen = Seen()
    async with harness.client(mode=mode) as client:
        result = await client.call_tool("find_sla_risk", {"limit": 1}, progress_callback=seen)
    found = result.structured_content
    read = found["breached"] + found["due_soon"] + found["paused"]
    pages = len(ticket_pages(harness))
    assert result.is_error is False and pages == 3
    assert [done for done, _, _ in seen.reports] == [MAX_PAGE_SIZE, 2 * MAX_PAGE_SIZE, read]
    assert seen.reports[-1][1:] == (None, f"tickets read: {read}")  # a walk's end is not known in advance


@pytest.mark.parametrize("mode", MODES)
async def test_service_desk_summary_reports_the_closed_tickets_it_timed(tmp_path, mode):
    harness = make_harness(tmp_path, sandbox_settings={"acme": BIG})
    seen = Seen()
    async with harness.client(mode=mode) as client:
        result = await client.call_tool(
            "service_desk_summary", {"since": "2026-01-01T00:00:00Z"}, progress_callback=seen
        )
    timed = result.structured_content["resolution"]["tickets"]
    done = [done for done, _, _ in seen.reports]
    assert result.is_error is False and timed > 2 * MAX_PAGE_SIZE
    assert done == sorted(set(done)) and done[-1] == timed and len(done) == len(ticket_pages(harness))


async def test_a_call_without_a_progress_token_is_answered_the_same(tmp_path):
    harness = make_harness(tmp_path, sandbox_settings={"acme": BIG})
    async with harness.client() as client:
        quiet = await client.call_tool("find_sla_risk", {"limit": 1})
        reported = await client.call_tool("find_sla_risk", {"limit": 1}, progress_callback=Seen())
    assert quiet.structured_content["tickets"] == reported.structured_content["tickets"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_call_cancelled_after_its_first_page_reads_no_more_and_the_server_goes_on(tmp_path, mode):
    harness = make_harness(tmp_path, sandbox_settings={"acme": BIG})
    async with harness.client(mode=mode) as client:
        await client.call_tool("list_boards", {})  # the boards are cached: the call's requests are its pages
        harness.sandboxes["acme"].state.faults.latency_ms = 200  # pages slow enough to cancel between them
        seen = Seen()
        with anyio.CancelScope() as scope:

            async def cancel_after_the_first(done, total, message):
                await seen(done, total, message)
                scope.cancel()  # as a user pressing stop once the first count shows

            await client.call_tool("find_sla_risk", {"limit": 1}, progress_callback=cancel_after_the_first)
        assert scope.cancelled_caught
        await anyio.sleep(0.6)  # what the server would still do, it does now
        harness.sandboxes["acme"].state.faults.latency_ms = 0
        after = await client.call_tool("find_sla_risk", {"limit": 1})
    assert seen.reports[0][0] == MAX_PAGE_SIZE
    cancelled, answered = harness.audit()[-2:]
    assert (cancelled["tool"], cancelled["outcome"], cancelled["error"]) == ("find_sla_risk", "error", "cancelled")
    pages = [r for r in cancelled["requests"] if r["path"] == "/service/tickets"]
    # The walk stopped at the cancel: one page answered, the next at most begun (the cancel crosses the wire in
    # the handshake era), the last never asked for.
    assert [r["status"] for r in pages] in ([200], [200, None])
    if mode == "auto":
        assert len(pages) == 1  # in memory the cancel takes effect as the count is reported
    assert answered["outcome"] == "ok" and after.is_error is False


async def test_a_200_device_sync_reports_each_device_written_in_increasing_order(tmp_path):
    # The highest request budget: the pacing of 200 writes is not what this test is about.
    harness = make_harness(tmp_path, {"acme": {"requests_per_minute": MAX_REQUESTS_PER_MINUTE}})
    devices = [
        {"name": f"ACME-LAB-{n:03d}", "type": "Managed Workstation", "serial_number": f"LAB{n:07d}"} for n in range(200)
    ]
    seen = Seen()
    async with harness.client() as client:
        result = await client.call_tool(
            "sync_configurations", {"company": "ACME", "devices": devices}, progress_callback=seen
        )
    assert result.is_error is False and result.structured_content["counts"] == {"created": 200}
    assert [done for done, _, _ in seen.reports] == list(range(1, 201))
    assert {total for _, total, _ in seen.reports} == {200}
    assert seen.reports[-1][2] == "devices written: 200 of 200"
