"""report_alert end to end: an MCP client, our server, the in-process sandbox. One ticket per alert, whatever
the order, the concurrency or a restart in between."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from mcp import Client

from mcp_server_connectwise.config import AppConfig, AuditConfig
from mcp_server_connectwise.sandbox.tenant import ALERTS, sandbox_tenant
from mcp_server_connectwise.server import build_server
from mcp_server_connectwise.services.alerts import KEY_MAX_CHARS, alert_key

from support.faults import recorded_settle_waits, script_faults
from support.harness import make_harness

T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
ALERT = {
    "source": "datto-rmm",
    "alert_id": "disk-c-acme-dc01",
    "severity": "high",
    "company": "ACME",
    "summary": "Disk C: below 10% free on ACME-DC01",
    "details": "C: has 4.1 GB free of 120 GB.",
    "device": "ACME-DC01",
}
KEY = alert_key(ALERT["source"], ALERT["alert_id"])


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


async def report(client, state: str = "raised", minutes: float = 0, **changes):
    result = await client.call_tool("report_alert", ALERT | {"state": state, "occurred_at": at(minutes)} | changes)
    assert result.is_error is False, result.content[0].text
    return result.structured_content


def tickets_of(store, key: str = KEY) -> list[dict]:
    return [t for t in store["tickets"].values() if t.get("externalXRef") == key]


def notes_of(store, ticket_id: int) -> list[dict]:
    return [n for n in store["notes"].values() if n["ticketId"] == ticket_id]


def status_name(store, ticket: dict) -> str:
    return store["statuses"][ticket["status"]["id"]]["name"]


async def test_raised_creates_one_ticket_on_the_alert_board_with_the_key(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    async with harness.client() as client:
        answer = await report(client)
    assert answer["outcome"] == "created" and answer["key"] == KEY == "datto-rmm:disk-c-acme-dc01"
    [ticket] = tickets_of(store)
    assert ticket["id"] == answer["ticket_id"]
    assert (ticket["board"]["name"], status_name(store, ticket), ticket["type"]["name"]) == ("Alerts", "New", "Alert")
    assert ticket["priority"]["name"] == ALERTS.priority["high"]
    assert ticket["company"]["identifier"] == "ACME"
    [device] = [c for c in store["configurations"].values() if c["name"] == "ACME-DC01"]
    assert store.ticket_configurations[ticket["id"]] == [device["id"]]
    [post] = [r for r in harness.requests() if r["method"] == "POST" and r["path"] == "/service/tickets"]
    assert post["json"]["processNotifications"] is False and post["json"]["externalXRef"] == KEY
    texts = {note["text"] for note in notes_of(store, ticket["id"])}
    assert ALERT["details"] in texts  # the description


async def test_repeats_are_coalesced_into_one_note_per_interval(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    async with harness.client() as client:
        created = await report(client, minutes=0)
        outcomes = [(await report(client, minutes=m))["outcome"] for m in (1, 5, 14, 16, 20, 31, 32)]
    assert outcomes == ["coalesced", "coalesced", "coalesced", "noted", "coalesced", "noted", "coalesced"]
    assert len(tickets_of(store)) == 1
    repeat_notes = [n for n in notes_of(store, created["ticket_id"]) if "still raised" in n["text"]]
    assert len(repeat_notes) == 2
    assert "4 more times" in repeat_notes[0]["text"] and at(1)[:16] in repeat_notes[0]["text"].replace(" ", "T")
    assert all(n["internalAnalysisFlag"] and not n["detailDescriptionFlag"] for n in repeat_notes)


async def test_cleared_closes_an_unworked_ticket_and_a_recurrence_reopens_it(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    async with harness.client() as client:
        created = await report(client, minutes=0)
        closed = await report(client, "cleared", minutes=10)
        ticket = store["tickets"][created["ticket_id"]]
        assert closed["outcome"] == "closed" and status_name(store, ticket) == ALERTS.close_status
        assert ticket["closedFlag"] is True
        reopened = await report(client, minutes=20)
        ticket = store["tickets"][created["ticket_id"]]
        assert reopened["outcome"] == "reopened" and reopened["ticket_id"] == created["ticket_id"]
        assert status_name(store, ticket) == ALERTS.status and ticket["closedFlag"] is False
        assert len(tickets_of(store)) == 1
        nothing = await report(client, "cleared", minutes=30, alert_id="never-raised")
    assert nothing["outcome"] == "skipped" and "no open ticket" in nothing["reason"]


@pytest.mark.parametrize("how", ["status changed by a person", "time logged"])
async def test_a_ticket_a_person_worked_is_kept_open_on_clear(tmp_path, how):
    harness = make_harness(tmp_path)
    store = harness.store()
    async with harness.client() as client:
        created = await report(client)
        ticket_id = created["ticket_id"]
        if how == "time logged":
            entry = {"ticket_id": ticket_id, "start": at(1), "hours": 0.25, "notes": "Cleared temp files."}
            assert (await client.call_tool("create_time_entry", entry)).is_error is False
        else:
            changed = await client.call_tool("update_ticket", {"ticket_id": ticket_id, "status": "Investigating"})
            assert changed.is_error is False
        cleared = await report(client, "cleared", minutes=10)
    ticket = store["tickets"][ticket_id]
    assert cleared["outcome"] == "kept_open" and ticket["closedFlag"] is False
    assert ("time entr" if how == "time logged" else "Investigating") in cleared["reason"]
    assert any("cleared" in n["text"] and "left open" in n["text"] for n in notes_of(store, ticket_id))


async def test_after_the_reopen_window_a_recurrence_is_a_new_ticket_naming_the_earlier(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    async with harness.client() as client:
        first = await report(client, minutes=0)
        await report(client, "cleared", minutes=5)
        # ConnectWise shows the ticket closed a day and an hour ago: past the 24 h window.
        ticket = store["tickets"][first["ticket_id"]]
        closed = datetime.now(timezone.utc) - timedelta(hours=ALERTS.reopen_hours + 1)
        store.put("tickets", {**ticket, "closedDate": closed.strftime("%Y-%m-%dT%H:%M:%SZ")})
        second = await report(client, minutes=115)
    assert second["outcome"] == "created" and second["ticket_id"] != first["ticket_id"]
    assert second["earlier_ticket_id"] == first["ticket_id"]
    assert any(f"ticket {first['ticket_id']}" in n["text"] for n in notes_of(store, second["ticket_id"]))
    assert len(tickets_of(store)) == 2


async def test_a_flapping_alert_is_told_once_and_no_longer_auto_closed(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    async with harness.client() as client:
        created = await report(client, minutes=0)
        outcomes = []
        for cycle in range(ALERTS.flap_limit):
            outcomes.append((await report(client, "cleared", minutes=10 * cycle + 2))["outcome"])
            outcomes.append((await report(client, minutes=10 * cycle + 5))["outcome"])
        last_clear = await report(client, "cleared", minutes=40)
    assert outcomes == ["closed", "reopened"] * ALERTS.flap_limit
    assert last_clear["outcome"] == "kept_open" and "flapping" in last_clear["reason"]
    ticket = store["tickets"][created["ticket_id"]]
    assert ticket["closedFlag"] is False
    flapping = [n for n in notes_of(store, ticket["id"]) if "flapping: closed and reopened" in n["text"]]
    assert len(flapping) == 1


async def test_below_min_severity_nothing_is_written_but_the_call_is_audited(tmp_path):
    harness = make_harness(tmp_path)
    async with harness.client() as client:
        answer = await report(client, severity="INFO")
    assert answer["outcome"] == "skipped" and "min_severity" in answer["reason"] and "ticket_id" not in answer
    assert harness.requests() == []
    [line] = harness.audit()
    assert (line["tool"], line["outcome"]) == ("report_alert", "ok")


async def test_a_tenant_without_an_alerts_table_refuses_with_how_to_enable_it(tmp_path):
    harness = make_harness(tmp_path, {"acme": {"alerts": None}})
    async with harness.client() as client:
        result = await client.call_tool("report_alert", ALERT | {"state": "raised"})
    assert result.is_error is True and "[tenants.acme.alerts]" in result.content[0].text
    assert harness.requests() == []


async def test_a_wrong_alert_config_names_its_key(tmp_path):
    harness = make_harness(tmp_path, {"acme": {"alerts": ALERTS.model_copy(update={"close_status": "New"})}})
    async with harness.client() as client:
        result = await client.call_tool("report_alert", ALERT | {"state": "raised"})
    assert result.is_error is True
    assert "[tenants.acme.alerts] close_status 'New' is not a closed status of board Alerts" in result.content[0].text
    assert [r for r in harness.requests() if r["method"] != "GET"] == []


async def test_fifty_concurrent_reports_of_one_alert_make_one_ticket(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    async with harness.client() as client:
        answers = await asyncio.gather(*(report(client, minutes=n * 0.5) for n in range(50)))
    [ticket] = tickets_of(store)
    outcomes = [a["outcome"] for a in answers]
    assert outcomes.count("created") == 1 and set(outcomes) <= {"created", "coalesced", "noted"}
    assert {a["ticket_id"] for a in answers} == {ticket["id"]}
    # The reports span 24.5 minutes: at most one repeat note per 15 minutes of alert time.
    assert len([n for n in notes_of(store, ticket["id"]) if "still raised" in n["text"]]) <= 2


async def test_a_restarted_server_finds_the_open_ticket_and_closes_it(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    async with harness.client() as client:
        created = await report(client)
    # Another server process on the same ConnectWise, with nothing of the first one's memory.
    tenant = sandbox_tenant("acme", harness.sandboxes["acme"])
    config = AppConfig(
        default_tenant="acme", audit=AuditConfig(path=tmp_path / "restarted.jsonl"), tenants={"acme": tenant.config}
    )
    restarted = build_server(config, transports={"acme": tenant.transport}, credentials={"acme": tenant.credentials})
    async with Client(restarted) as client:
        again = await report(client, minutes=3)
        cleared = await report(client, "cleared", minutes=9)
    assert again["outcome"] == "coalesced" and again["ticket_id"] == created["ticket_id"]
    assert cleared["outcome"] == "closed" and cleared["ticket_id"] == created["ticket_id"]
    assert len(tickets_of(store)) == 1 and store["tickets"][created["ticket_id"]]["closedFlag"] is True


async def test_a_lost_answer_to_the_create_ends_with_one_ticket(tmp_path, monkeypatch):
    recorded_settle_waits(monkeypatch)
    harness = make_harness(tmp_path)
    store = harness.store()
    script_faults(harness.sandboxes["acme"], post=["drop_after_commit"])
    async with harness.client() as client:
        answer = await report(client)
        again = await report(client, minutes=1)
    [ticket] = tickets_of(store)
    assert answer["outcome"] == "created" and answer["ticket_id"] == ticket["id"]
    assert again["outcome"] == "coalesced" and again["ticket_id"] == ticket["id"]


def test_a_key_longer_than_the_field_or_with_odd_characters_is_hashed_deterministically():
    long_id = "x" * 300
    key = alert_key("nagios", long_id)
    assert len(key) <= KEY_MAX_CHARS and key == alert_key("nagios", long_id) and key.startswith("nagios:")
    assert alert_key("nagios", 'say "hi"\'') != alert_key("nagios", "say hi")
    assert alert_key("nagios", "disk/C:@srv01") == "nagios:disk/C:@srv01"
    assert alert_key("nagios", "ABC") != alert_key("nagios", "abc")  # ids differ in case: two alerts


async def test_a_clear_at_a_severity_below_min_severity_still_closes(tmp_path):
    harness = make_harness(tmp_path)
    async with harness.client() as client:
        created = await report(client)
        cleared = await report(client, "cleared", minutes=5, severity="info")  # below the demo's min "low"
    assert cleared["outcome"] == "closed" and cleared["ticket_id"] == created["ticket_id"]
