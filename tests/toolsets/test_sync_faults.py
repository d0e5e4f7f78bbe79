"""A 200-device sync_configurations under a stream of faults: over a real socket, through a proxy that loses answers
after the write happened, resets connections and answers 502 and 429, to a sandbox (served by uvicorn) that
injects its own 500s, 503s and dropped connections. Each call's outcomes are checked against the store right
after it; the devices it did not finish are sent again, as an RMM would, until none is left. Then every device
is in ConnectWise exactly once, holding what was reported."""

from __future__ import annotations

import asyncio
from collections import Counter

from mcp import Client

from mcp_server_connectwise.config import AppConfig, AuditConfig
from mcp_server_connectwise.config.models import MAX_REQUESTS_PER_MINUTE
from mcp_server_connectwise.sandbox import SandboxSettings
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.server import build_server

from support.fault_proxy import proxied_sandbox, random_faults
from support.faults import fast_recovery

TIME_LIMIT_SECONDS = 120
PROXY_FAULTS = {"drop_after_commit": 0.08, "reset_before": 0.06, "bad_gateway": 0.04, "rate_limited": 0.015}
SANDBOX_FAULT_RATE = 0.04
ROUNDS = 5  # calls per pass, at most: each sends again only what the one before did not finish
FIELDS = {"name": "name", "serial_number": "serialNumber", "ip_address": "ipAddress", "os_info": "osInfo"}


def fleet(ip_of: dict[int, str] | None = None) -> list[dict]:
    ip_of = ip_of or {}
    return [
        {
            "name": f"ACME-RMM-{n:03d}",
            "type": "Managed Workstation",
            "serial_number": f"RMM{n:07d}",
            "ip_address": ip_of.get(n, f"10.2.1.{n % 250}"),
            "os_info": f"22H2 build {22000 + n}",
        }
        for n in range(200)
    ]


def holding(store, device: dict) -> list[dict]:
    return [r for r in store["configurations"].values() if r.get("serialNumber") == device["serial_number"]]


def holds(record: dict, device: dict) -> bool:
    return all(record.get(path) == device[argument] for argument, path in FIELDS.items())


def check_against_the_store(store, devices: list[dict], outcomes: list[dict], before: dict[str, list[int]]) -> None:
    """What each outcome says of a device is what the store shows of it right after the call."""
    for outcome in outcomes:
        device = devices[outcome["device"]]
        records = holding(store, device)
        assert len(records) <= 1, (outcome, records)  # never two
        if outcome["outcome"] in ("created", "updated", "unchanged"):
            assert [r["id"] for r in records] == [outcome["configuration_id"]], outcome
            assert holds(records[0], device), (outcome, records[0])
        if outcome["outcome"] == "created":
            assert before[device["serial_number"]] == [], outcome
        if outcome["outcome"] in ("failed", "not_reached"):  # nothing of this call's written
            assert [r["id"] for r in records] == before[device["serial_number"]], outcome


async def sync_until_done(client, store, devices: list[dict]) -> Counter:
    """Sync `devices`, then again only those not done, checking each call; the outcomes of all the calls."""
    seen: Counter = Counter()
    pending = list(range(len(devices)))
    for _ in range(ROUNDS):
        batch = [devices[n] for n in pending]
        before = {device["serial_number"]: [r["id"] for r in holding(store, device)] for device in batch}
        result = await client.call_tool("sync_configurations", {"company": "ACME", "devices": batch})
        assert result.is_error is False, result.content[0].text
        answer = result.structured_content
        check_against_the_store(store, batch, answer["devices"], before)
        seen.update(done["outcome"] for done in answer["devices"])
        pending = [pending[n] for n in answer["to_repeat"]]
        if not pending:
            return seen
    raise AssertionError(f"devices {pending} still not done after {ROUNDS} calls; outcomes so far {seen}")


async def test_a_200_device_sync_under_faults_ends_with_each_device_once_as_reported(tmp_path, monkeypatch):
    fast_recovery(monkeypatch)
    settings = SandboxSettings(tickets=50, fault_rate=SANDBOX_FAULT_RATE, seed=5)
    async with (
        asyncio.timeout(TIME_LIMIT_SECONDS),
        proxied_sandbox(settings, random_faults(13, PROXY_FAULTS)) as served,
    ):
        sandbox = sandbox_tenant(
            "acme", served.app, base_url=served.base_url, requests_per_minute=MAX_REQUESTS_PER_MINUTE
        )
        config = AppConfig(
            default_tenant="acme", audit=AuditConfig(path=tmp_path / "audit.jsonl"), tenants={"acme": sandbox.config}
        )
        server = build_server(config, credentials={"acme": sandbox.credentials})  # over the network, via the proxy
        store = served.app.state.store
        configurations_before = len(store["configurations"])
        async with Client(server, raise_exceptions=True) as client:
            created = await sync_until_done(client, store, fleet())
            moved = fleet({n: f"10.9.0.{n}" for n in range(0, 200, 20)})  # ten devices moved to another network
            updated = await sync_until_done(client, store, moved)

    for device in moved:
        [record] = holding(store, device)
        assert holds(record, device), record
    assert len(store["configurations"]) == configurations_before + 200  # and nothing else was created
    assert created["created"] == 200 and updated["updated"] == 10 and updated["unchanged"] >= 190
    proxy_faults = Counter(request.action for request in served.log)
    sandbox_faults = served.app.state.faults.injected
    writes = [r for r in served.log if r.method in ("POST", "PATCH")]
    lost = [r for r in writes if r.action == "drop_after_commit"]
    summary = f"{dict(created)}; {dict(updated)}; proxy {dict(proxy_faults)}; sandbox {dict(sandbox_faults)}"
    print(summary)
    assert all(proxy_faults[action] >= 2 for action in PROXY_FAULTS), summary
    assert len(lost) >= 5 and sum(sandbox_faults.values()) >= 5, summary
