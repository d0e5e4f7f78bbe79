"""The seed: deterministic, realistic, with the hard cases others rely on, and cheap to scale."""

from __future__ import annotations

import json

from mcp_server_connectwise.sandbox import SANDBOX_BASE_URL, SandboxSettings
from mcp_server_connectwise.sandbox.seed import PRIORITIES, SEED_NOW, seed_store
from mcp_server_connectwise.sandbox.store import Store, iso, parse_iso

TABLES = (
    "tickets",
    "notes",
    "timeEntries",
    "boards",
    "statuses",
    "companies",
    "contacts",
    "configurations",
    "members",
    "agreements",
    "priorities",
)


def seeded(**settings) -> Store:
    store = Store(SANDBOX_BASE_URL)
    seed_store(store, SandboxSettings(**settings))
    return store


def dump(store: Store) -> str:
    return json.dumps({name: store[name] for name in TABLES}, sort_keys=True, ensure_ascii=False)


def test_same_seed_same_data_other_seed_other_data():
    assert dump(seeded(tickets=120)) == dump(seeded(tickets=120))
    assert dump(seeded(tickets=120)) != dump(seeded(tickets=120, seed=2))


def test_boards_have_their_own_workflows():
    store = seeded(tickets=10)
    boards = {b["name"]: b for b in store["boards"].values()}
    assert {"Service Desk", "Alerts", "Onboarding & Projects", "Escalations", "Legacy Helpdesk"} == set(boards)
    by_board = {name: {s["name"]: s for s in store.children("statuses", b["id"])} for name, b in boards.items()}
    desk = by_board["Service Desk"]
    assert desk["New"]["defaultFlag"] and desk[">Closed"]["closedStatus"] and desk[">Closed"]["timeEntryNotAllowed"]
    assert desk["Pending Approval"]["timeEntryNotAllowed"] and not desk["Pending Approval"]["closedStatus"]
    assert desk["Waiting on Customer"]["escalationStatus"] == "NoEscalation"
    assert desk["New"]["id"] != by_board["Alerts"]["New"]["id"]  # a status name means nothing off its board
    for statuses in by_board.values():
        assert sum(s["defaultFlag"] for s in statuses.values()) == 1
        assert any(s["closedStatus"] for s in statuses.values())


def test_tickets_are_plausible_and_consistent():
    store = seeded(tickets=500)
    tickets = list(store["tickets"].values())
    assert len(tickets) == 500
    statuses = store["statuses"]
    for ticket in tickets:
        status = statuses[ticket["status"]["id"]]
        assert status["board"]["id"] == ticket["board"]["id"]
        assert ticket["closedFlag"] is status["closedStatus"]
        assert ("closedDate" in ticket) is ticket["closedFlag"]
        assert len(ticket["summary"]) <= 100
        assert ticket["_info"]["dateEntered"] <= ticket["_info"]["lastUpdated"]
        hours = sum(e["actualHours"] for e in store.children("timeEntries", ticket["id"]))
        assert abs(ticket.get("actualHours", 0) - hours) < 1e-9
    assert 0.3 < sum(t["closedFlag"] for t in tickets) / len(tickets) < 0.9
    assert [t["id"] for t in tickets] == sorted(t["id"] for t in tickets)


def test_open_tickets_carry_the_sla_deadlines_of_their_priority_and_some_fall_due_at_seed_now():
    store = seeded(tickets=200)  # the tests' sandbox (support.harness.SANDBOX)
    hours = {name: (respond, plan, resolve) for name, *_rest, respond, plan, resolve, _share in PRIORITIES}
    statuses = store["statuses"]
    due: dict[str, int] = {"breached": 0, "within 2 h": 0, "later": 0, "paused": 0}
    for ticket in store["tickets"].values():
        if ticket["closedFlag"]:
            assert ticket["dateResponded"] <= ticket["closedDate"]
            continue
        entered = parse_iso(ticket["_info"]["dateEntered"])
        respond, plan, resolve = hours[ticket["priority"]["name"]]
        waited = ticket.get("minutesWaiting", 0) * 60
        assert parse_iso(ticket["respondByGoalUTC"]) == entered + respond * 3600
        assert parse_iso(ticket["resplanGoalUTC"]) == entered + plan * 3600 + waited
        assert parse_iso(ticket["resolutionGoalUTC"]) == entered + resolve * 3600 + waited
        if "dateResplan" in ticket:
            assert ticket["dateResponded"] <= ticket["dateResplan"] <= iso(SEED_NOW)
        if "dateResponded" in ticket:
            assert ticket["dateResponded"] <= iso(SEED_NOW)
        milestone = (
            "respondByGoalUTC"
            if "dateResponded" not in ticket
            else ("resolutionGoalUTC" if "dateResplan" in ticket else "resplanGoalUTC")
        )
        left = parse_iso(ticket[milestone]) - SEED_NOW
        if statuses[ticket["status"]["id"]]["escalationStatus"] == "NoEscalation":
            due["paused"] += 1
        else:
            due["breached" if left < 0 else "within 2 h" if left <= 7200 else "later"] += 1
    assert due["breached"] > 10 and due["paused"] > 5 and due["within 2 h"] >= 3


def test_hard_text_is_present():
    store = seeded(tickets=500)
    names = [c["name"] for c in store["companies"].values()]
    assert any('"' in n and "'" in n for n in names)  # both quote kinds in one value
    assert any(not n.isascii() for n in names)
    assert any(ch in n for n in names for ch in "%_[")
    texts = [n["text"] for n in store["notes"].values()]
    assert any("ignore previous instructions" in t.lower() for t in texts)
    assert max(len(t) for t in texts) > 2000
    assert any(not (c["firstName"] + c["lastName"]).isascii() for c in store["contacts"].values())
    members = {m["identifier"]: m for m in store["members"].values()}
    assert members["api-bot"]["licenseClass"] == "A" and members["kfischer"]["inactiveFlag"]


def test_time_entries_move_through_the_time_sheet_workflow_week_by_week():
    entries = list(seeded(tickets=500)["timeEntries"].values())
    by_week: dict[str, set[str]] = {}
    for entry in entries:
        by_week.setdefault(entry["timeStart"][:10], set()).add(entry["status"])
    # SEED_NOW is Monday 2026-11-02: this week and last are open, then submitted, approved, ready, billed.
    weeks = [
        ("2026-10-26", "2026-11-03", {"Open"}),
        ("2026-10-19", "2026-10-26", {"PendingApproval"}),
        ("2026-10-12", "2026-10-19", {"ApprovedByTierOne"}),
        ("2026-10-05", "2026-10-12", {"ReadyToBill"}),
        ("1753-01-01", "2026-10-05", {"Billed", "BilledAgreement"}),
    ]
    for first, end, expected in weeks:
        seen = {status for day, statuses in by_week.items() if first <= day < end for status in statuses}
        assert seen - {"Rejected"} == expected, (first, seen)
    rejected = [e for e in entries if e["status"] == "Rejected"]
    assert rejected and all(e["id"] % 25 == 0 and e["timeStart"] < "2026-10-26" for e in rejected)
    assert seeded(tickets=50)["timeEntries"][25]["status"] == "Rejected"  # whatever the seed's size


def test_notes_and_time_entries_are_built_only_when_read():
    store = seeded(tickets=20_000)
    assert "notes" in store._loaders and "timeEntries" in store._loaders
    assert store["notes"] and "notes" not in store._loaders
