"""Isolation under load: concurrent calls for several tenants, each its own sandbox with its own credentials and
its own ids, never mix clients, caches, audit lines or rate budgets.

Every sandbox logs every request it answered, with the Basic-auth principal (`company+publicKey`) it carried;
the proof is read from those logs, not from our own bookkeeping.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

from starlette.applications import Starlette

from mcp_server_connectwise.config import AppConfig, AuditConfig
from mcp_server_connectwise.connectwise import ConnectWiseClient
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.tenant import CLIENT_ID, sandbox_tenant
from mcp_server_connectwise.services.tenancy import Tenants

from support.harness import Harness, make_harness, sandbox_client

SANDBOXES = {
    name: SandboxSettings(
        seed=seed, tickets=200, company=f"{name}-co", public_key=f"{name}-pub", private_key=f"{name}-priv"
    )
    for seed, name in enumerate(("acme", "globex", "initech"), 1)
}
SERVICE_DESK = 1  # the sandbox's first board
SHARED_STATUS = "Isolation Check"  # the same name in every sandbox, under a different id in each


def own_client(name: str, app: Starlette) -> ConnectWiseClient:
    return sandbox_client(sandbox_tenant(name, app))


async def add_shared_status(name: str, app: Starlette, fillers: int) -> int:
    """Create `fillers` statuses, then SHARED_STATUS, on the Service Desk board: its id differs per sandbox."""
    client = own_client(name, app)
    try:
        for number in range(fillers):
            await client.post(f"/service/boards/{SERVICE_DESK}/statuses", {"name": f"Filler {number}"})
        created = await client.post(f"/service/boards/{SERVICE_DESK}/statuses", {"name": SHARED_STATUS})
    finally:
        await client.aclose()
    app.state.request_log.clear()  # the run's logs hold only what the server sent
    return created["id"]


def workable_service_desk_tickets(app: Starlette, count: int) -> list[int]:
    """Service Desk tickets whose status is open and takes time entries."""
    store = app.state.store
    workable = [
        ticket["id"]
        for ticket in store["tickets"].values()
        if ticket["board"]["id"] == SERVICE_DESK
        and not (status := store["statuses"][ticket["status"]["id"]])["closedStatus"]
        and not status["timeEntryNotAllowed"]
    ]
    return sorted(workable)[:count]


def make_isolated_harness(tmp_path: Path) -> Harness:
    return make_harness(tmp_path, {name: {} for name in SANDBOXES}, sandbox_settings=SANDBOXES)


def calls_for(tenant: str, tickets: list[int]) -> list[tuple[str, dict]]:
    first, second, third = tickets
    return [
        (name, {**arguments, "tenant": tenant})
        for name, arguments in [
            ("list_board_statuses", {"board": "Service Desk"}),
            ("search_tickets", {"board": "Service Desk", "limit": 5}),
            ("get_ticket_details", {"ticket_id": first}),
            ("get_ticket_details", {"ticket_id": second, "include_notes": False}),
            ("add_ticket_note", {"ticket_id": first, "text": f"Isolation note 1 for {tenant}"}),
            ("add_ticket_note", {"ticket_id": second, "text": f"Isolation note 2 for {tenant}"}),
            ("update_ticket", {"ticket_id": second, "status": SHARED_STATUS}),
            ("update_ticket", {"ticket_id": third, "status": SHARED_STATUS}),
            (
                "create_time_entry",
                {
                    "ticket_id": first,
                    "start": "2026-11-02T09:00:00Z",
                    "hours": 0.5,
                    "notes": f"Isolation time for {tenant}",
                },
            ),
        ]
    ]


async def test_concurrent_calls_for_three_tenants_never_mix(tmp_path):
    harness = make_isolated_harness(tmp_path)
    status_ids = {
        name: await add_shared_status(name, harness.sandboxes[name], fillers) for fillers, name in enumerate(SANDBOXES)
    }
    assert len(set(status_ids.values())) == 3  # one name, three ids: a mixed-up cache would send a wrong one
    tickets = {name: workable_service_desk_tickets(harness.sandboxes[name], 3) for name in SANDBOXES}
    calls = [call for name in SANDBOXES for call in calls_for(name, tickets[name])]
    random.Random(5).shuffle(calls)

    async with harness.client() as client:
        results = await asyncio.gather(*(client.call_tool(name, arguments) for name, arguments in calls))

    assert len(calls) == 27 and [r.content[0].text for r in results if r.is_error] == []
    for name, settings in SANDBOXES.items():
        log = harness.requests(name)
        # Every request carried this tenant's own credentials: nothing of another tenant reached this sandbox.
        assert {(r["principal"], r["client_id"]) for r in log} == {
            (f"{settings.company}+{settings.public_key}", CLIENT_ID)
        }
        assert 401 not in {r["status"] for r in log}
        writes = [r for r in log if r["method"] != "GET"]
        assert Counter(r["method"] for r in writes) == {"POST": 3, "PATCH": 2}
        # The status id came from this tenant's own cache.
        patched = [op["value"] for r in writes if r["method"] == "PATCH" for op in r["json"] if op["path"] == "status"]
        assert patched == [{"id": status_ids[name]}] * 2
        posted = [r["json"].get("text") or r["json"].get("notes") for r in writes if r["method"] == "POST"]
        assert sorted(posted) == [
            f"Isolation note 1 for {name}",
            f"Isolation note 2 for {name}",
            f"Isolation time for {name}",
        ]
        store = harness.store(name)
        for ticket_id in tickets[name][1:]:
            assert store["tickets"][ticket_id]["status"]["id"] == status_ids[name]
        # Each call's audit line lists exactly the requests this sandbox saw for it, under the right tenant.
        audited = [r["path"] for line in harness.audit() if line["tenant"] == name for r in line["requests"]]
        assert Counter(audited) == Counter(r["path"] for r in log)
    assert Counter(line["tenant"] for line in harness.audit()) == {name: 9 for name in SANDBOXES}


async def test_one_tenants_spent_rate_budget_does_not_slow_another(tmp_path):
    sandboxes = {
        name: sandbox_tenant(name, create_app(SANDBOXES[name]), requests_per_minute=budget)
        for name, budget in (("acme", 2), ("globex", 3000))
    }
    config = AppConfig(
        audit=AuditConfig(path=tmp_path / "audit.jsonl"),
        tenants={name: sandbox.config for name, sandbox in sandboxes.items()},
    )
    tenants = Tenants(
        config,
        credentials={name: sandbox.credentials for name, sandbox in sandboxes.items()},
        transports={name: sandbox.transport for name, sandbox in sandboxes.items()},
    )
    acme = (await tenants.open_session(config.tenants["acme"])).client
    globex = (await tenants.open_session(config.tenants["globex"])).client
    try:
        await acme.get("/service/boards/1")  # acme's burst of one
        second = asyncio.create_task(acme.get("/service/boards/1"))  # over acme's budget: waits half a minute
        await asyncio.sleep(0.2)
        await asyncio.wait_for(asyncio.gather(*(globex.get("/service/boards/1") for _ in range(30))), timeout=5)
        assert not second.done()
        assert (
            len(sandboxes["acme"].app.state.request_log) == 1 and len(sandboxes["globex"].app.state.request_log) == 30
        )
        second.cancel()
    finally:
        await tenants.aclose()
