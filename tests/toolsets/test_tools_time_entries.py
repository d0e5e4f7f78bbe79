"""create_time_entry and list_board_statuses end to end."""

from __future__ import annotations

from support.harness import make_harness


def ticket_in(harness, *, time_allowed: bool):
    statuses = harness.store()["statuses"]
    return next(
        t
        for t in harness.store()["tickets"].values()
        if bool(statuses[t["status"]["id"]]["timeEntryNotAllowed"]) is not time_allowed
    )


async def test_time_is_logged_against_the_ticket(tmp_path):
    harness = make_harness(tmp_path)
    ticket = ticket_in(harness, time_allowed=True)
    async with harness.client() as client:
        result = await client.call_tool(
            "create_time_entry",
            {
                "ticket_id": ticket["id"],
                "start": "2026-11-02T09:00:00+01:00",
                "end": "2026-11-02T10:15:00+01:00",
                "notes": "Replaced the toner.",
            },
        )
    assert result.is_error is False
    created = result.structured_content
    assert created["start"] == "2026-11-02T08:00:00Z" and created["end"] == "2026-11-02T09:15:00Z"
    assert created["hours"] == 1.25 and created["member"] == "jsmith"
    entry = harness.store()["timeEntries"][created["time_entry_id"]]
    assert (entry["chargeToType"], entry["chargeToId"]) == ("ServiceTicket", ticket["id"])


async def test_time_on_a_status_that_forbids_it_is_refused_and_nothing_is_posted(tmp_path):
    harness = make_harness(tmp_path)
    ticket = ticket_in(harness, time_allowed=False)
    async with harness.client() as client:
        result = await client.call_tool(
            "create_time_entry", {"ticket_id": ticket["id"], "start": "2026-11-02T09:00:00Z", "hours": 1}
        )
    assert result.is_error and "does not allow time entries" in result.content[0].text
    assert "POST" not in {r["method"] for r in harness.requests()}


async def test_a_time_without_a_zone_is_refused_before_any_request(tmp_path):
    harness = make_harness(tmp_path)
    async with harness.client() as client:
        result = await client.call_tool(
            "create_time_entry", {"ticket_id": 1001, "start": "2026-11-02T09:00:00", "hours": 1}
        )
    assert result.is_error and "has no time zone" in result.content[0].text
    assert harness.requests() == []


async def test_board_statuses_come_in_board_order_with_their_flags(tmp_path):
    harness = make_harness(tmp_path)
    async with harness.client() as client:
        result = await client.call_tool("list_board_statuses", {"board": "SERVICE DESK"})
        by_id = await client.call_tool("list_board_statuses", {"board": 2})
        unknown = await client.call_tool("list_board_statuses", {"board": "Help Desk"})
    statuses = result.structured_content["statuses"]
    assert [s["name"] for s in statuses][:3] == ["New", "Assigned", "In Progress"]
    closed = next(s for s in statuses if s["name"] == ">Closed")
    assert closed["closed"] and closed["time_entry_not_allowed"] and not closed["default"]
    assert statuses[0]["default"] is True
    assert by_id.structured_content["board"] == "Alerts"
    assert (
        unknown.is_error
        and "There is no board 'Help Desk' in tenant acme; boards: Service Desk, Alerts" in unknown.content[0].text
    )
