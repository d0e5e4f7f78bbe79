"""sync_configurations end to end (an MCP client, our server, the in-process sandbox): only the writes needed, one
outcome per device, and a stop at the call's deadline that says what was not reached."""

from __future__ import annotations

import anyio
import httpx2
from mcp import Client

from mcp_server_connectwise.config import AppConfig, AuditConfig
from mcp_server_connectwise.config.models import MAX_REQUESTS_PER_MINUTE, ServerConfig
from mcp_server_connectwise.connectwise import RetryPolicy
from mcp_server_connectwise.sandbox import create_app
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.server import build_server

from support.faults import fast_recovery
from support.harness import SANDBOX, make_harness, writes

# The tests send hundreds of writes: the budget's pacing of them (20 s for 200 at the default) is not tested here.
FAST = {"acme": {"requests_per_minute": MAX_REQUESTS_PER_MINUTE}}


def fleet(count: int, **changed: dict) -> list[dict]:
    """`count` workstations of an RMM, each with its own serial number; `changed` replaces some devices' fields
    (by index, as text)."""
    devices = [
        {
            "name": f"ACME-RMM-{n:03d}",
            "type": "Managed Workstation",
            "serial_number": f"RMM{n:07d}",
            "ip_address": f"10.2.1.{n % 250}",
            "mac_address": f"00:1A:2B:00:{n // 256:02X}:{n % 256:02X}",
            "os_type": "Windows 11 Pro",
            "last_login_name": f"ACME\\user{n}",
        }
        for n in range(count)
    ]
    for index, fields in changed.items():
        devices[int(index)] |= fields
    return devices


def in_store(store, devices: list[dict]) -> dict[str, list[dict]]:
    """The configurations holding each device's serial number."""
    serials = {device["serial_number"] for device in devices}
    found: dict[str, list[dict]] = {serial: [] for serial in serials}
    for record in store["configurations"].values():
        if record.get("serialNumber") in serials:
            found[record["serialNumber"]].append(record)
    return found


async def sync(client, devices: list[dict], company: str = "ACME"):
    result = await client.call_tool("sync_configurations", {"company": company, "devices": devices})
    assert result.is_error is False, result.content[0].text
    return result.structured_content


async def test_the_same_200_devices_twice_write_nothing_the_second_time_and_three_new_ips_three_patches(tmp_path):
    harness = make_harness(tmp_path, FAST)
    store = harness.store()
    devices = fleet(200)
    async with harness.client() as client:
        first = await sync(client, devices)
        after_first = len(harness.requests())
        assert first["counts"] == {"created": 200} and first["to_repeat"] == []
        records = in_store(store, devices)
        assert all(len(found) == 1 for found in records.values())  # every device exactly once
        for outcome, device in zip(first["devices"], devices, strict=True):
            record = store["configurations"][outcome["configuration_id"]]
            assert (record["name"], record["serialNumber"], record["ipAddress"]) == (
                device["name"],
                device["serial_number"],
                device["ip_address"],
            )
        second = await sync(client, devices)
        after_second = len(harness.requests())
        moved = fleet(200, **{str(n): {"ip_address": f"10.9.0.{n}"} for n in (3, 77, 150)})
        third = await sync(client, moved)
    assert len(writes(harness.requests()[:after_first])) == 200

    assert second["counts"] == {"unchanged": 200}
    assert [d["configuration_id"] for d in second["devices"]] == [d["configuration_id"] for d in first["devices"]]
    # The second sync, on a warm cache: one listing of the company's configurations, and no write.
    assert [(r["method"], r["path"]) for r in harness.requests()[after_first:after_second]] == [
        ("GET", "/company/configurations")
    ]

    assert third["counts"] == {"unchanged": 197, "updated": 3}
    patches = writes(harness.requests()[after_second:])
    assert sorted((p["path"], p["json"][0]["value"]) for p in patches) == sorted(
        (f"/company/configurations/{first['devices'][n]['configuration_id']}", f"10.9.0.{n}") for n in (3, 77, 150)
    )
    assert all(p["method"] == "PATCH" and p["json"] == [p["json"][0] | {"path": "ipAddress"}] for p in patches)
    assert [d for d in third["devices"] if d["outcome"] == "updated"] == [
        {
            "device": n,
            "name": devices[n]["name"],
            "outcome": "updated",
            "configuration_id": first["devices"][n]["configuration_id"],
            "changed": ["ip_address"],
        }
        for n in (3, 77, 150)
    ]
    [*_, line] = harness.audit()
    assert sorted(w["id"] for w in line["written"]) == sorted(
        first["devices"][n]["configuration_id"] for n in (3, 77, 150)
    )
    assert set(line["args"]["devices"]) == {"len", "sha256"}  # the batch is audited as its fingerprint


async def test_each_device_gets_its_own_outcome_and_a_refusal_stops_only_its_own(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    existing = next(c for c in store["configurations"].values() if c["name"] == "ACME-WS-014")
    devices = [
        {"name": "ACME-NEW-1", "type": "Managed Workstation", "serial_number": "NEW-1"},
        {"name": "ACME-NEW-2", "type": "Toaster", "serial_number": "NEW-2"},
        {"name": "ACME-NEW-3", "type": "Printer", "serial_number": "new-1"},  # device 0's serial number again
        {"name": "ACME-TWIN", "type": "Printer"},
        {"name": "acme-twin ", "type": "Printer"},  # the same name, and no serial number to tell them apart
        {"name": "x" * 101, "type": "Printer"},
        {"name": "acme-ws-014", "type": "Managed Workstation", "ip_address": existing["ipAddress"]},
    ]
    async with harness.client() as client:
        result = await sync(client, devices)
    outcomes = {d["device"]: d for d in result["devices"]}
    assert [outcomes[n]["outcome"] for n in range(7)] == [
        "created",
        "refused",
        "refused",
        "refused",
        "refused",
        "refused",
        "unchanged",
    ]
    assert "There is no active configuration type 'Toaster'" in outcomes[1]["reason"]
    assert outcomes[2]["reason"] == "device 0 has the same serial number 'new-1'; send each device once."
    assert "2 devices of this sync are named 'ACME-TWIN'" in outcomes[3]["reason"] and outcomes[4]["reason"]
    assert "name is 101 characters long" in outcomes[5]["reason"]
    assert outcomes[6]["configuration_id"] == existing["id"]
    assert result["counts"] == {"created": 1, "refused": 5, "unchanged": 1} and result["to_repeat"] == []
    assert "Refused devices were not written" in result["next_steps"]
    assert [r["json"]["name"] for r in writes(harness.requests())] == ["ACME-NEW-1"]


async def test_a_record_matched_by_one_device_is_not_matched_by_another(tmp_path):
    harness = make_harness(tmp_path)
    store = harness.store()
    printer = next(c for c in store["configurations"].values() if c["name"] == "ACME-PRN01")
    store.put("configurations", {key: value for key, value in printer.items() if key != "serialNumber"})
    devices = [
        {"name": "ACME-PRN01", "type": "Printer", "serial_number": "PRN-A"},
        {"name": "ACME-PRN01", "type": "Printer", "serial_number": "PRN-B"},  # a second printer of that name
    ]
    async with harness.client() as client:
        result = await sync(client, devices)
    first, second = result["devices"]
    assert (first["outcome"], first["configuration_id"], first["changed"]) == (
        "updated",
        printer["id"],
        ["serial_number"],
    )
    assert second["outcome"] == "created" and second["configuration_id"] != printer["id"]
    assert store["configurations"][printer["id"]]["serialNumber"] == "PRN-A"
    assert store["configurations"][second["configuration_id"]]["serialNumber"] == "PRN-B"


class SlowWrites(httpx2.AsyncBaseTransport):
    """ConnectWise taking `seconds` over each write while `slow` is set."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, seconds: float) -> None:
        self.inner, self.seconds, self.slow = inner, seconds, True

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "GET" and self.slow:
            await anyio.sleep(self.seconds)
        return await self.inner.handle_async_request(request)


async def test_a_sync_stops_at_the_deadline_and_says_what_was_not_reached(tmp_path):
    app = create_app(SANDBOX)
    sandbox = sandbox_tenant("acme", app, requests_per_minute=MAX_REQUESTS_PER_MINUTE)
    transport = SlowWrites(sandbox.transport, 0.4)
    config = AppConfig(
        default_tenant="acme",
        audit=AuditConfig(path=tmp_path / "audit.jsonl"),
        # Writes start while the deadline leaves time to settle a lost answer (5 s): here, for about a second.
        server=ServerConfig.model_construct(toolsets=None, call_deadline_seconds=6.0),
        tenants={"acme": sandbox.config},
    )
    server = build_server(config, transports={"acme": transport}, credentials={"acme": sandbox.credentials})
    store = app.state.store
    devices = fleet(80)
    async with Client(server, raise_exceptions=True) as client:
        with anyio.fail_after(6.0):
            stopped = await sync(client, devices)
        done = {d["device"] for d in stopped["devices"] if d["outcome"] == "created"}
        assert stopped["to_repeat"] == [n for n in range(80) if n not in done]
        assert 0 < len(done) < 40 and set(stopped["counts"]) == {"created", "not_reached"}
        assert "call again with only those" in stopped["next_steps"]
        # What the answer says is what the store holds: each created device once, none of the others.
        records = in_store(store, devices)
        for outcome in stopped["devices"]:
            serial = devices[outcome["device"]]["serial_number"]
            if outcome["outcome"] == "created":
                assert [r["id"] for r in records[serial]] == [outcome["configuration_id"]]
            else:
                assert records[serial] == [] and "nothing was written" in outcome["reason"]
        transport.slow = False
        rest = await sync(client, [devices[n] for n in stopped["to_repeat"]])
    assert rest["counts"] == {"created": 80 - len(done)}
    assert all(len(found) == 1 for found in in_store(store, devices).values())


class FailingContacts(httpx2.AsyncBaseTransport):
    """ConnectWise answering every contact lookup with a 500."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner, self.lookups = inner, 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/company/contacts"):
            self.lookups += 1
            return httpx2.Response(
                500, json={"code": "ConnectWiseApi", "message": "An error has occurred.", "errors": None}
            )
        return await self.inner.handle_async_request(request)


async def test_a_lookup_that_fails_for_one_device_stops_only_that_device(tmp_path, monkeypatch):
    fast_recovery(monkeypatch)
    transports: list[FailingContacts] = []
    harness = make_harness(tmp_path, wrap=lambda inner: transports.append(FailingContacts(inner)) or transports[-1])
    devices = [
        {"name": "ACME-NEW-1", "type": "Printer", "contact": "bjorn.angstrom@acme.example"},
        {"name": "ACME-NEW-2", "type": "Printer", "contact": "Bjorn.Angstrom@acme.example"},  # looked up once
        {"name": "ACME-NEW-3", "type": "Printer"},
    ]
    async with harness.client() as client:
        result = await sync(client, devices)
    first, second, third = result["devices"]
    assert (first["outcome"], second["outcome"], third["outcome"]) == ("failed", "failed", "created")
    assert "ConnectWise failed on its side (HTTP 500)" in first["reason"] and result["to_repeat"] == [0, 1]
    assert [r["json"]["name"] for r in writes(harness.requests())] == ["ACME-NEW-3"]
    assert transports[0].lookups == RetryPolicy().max_attempts  # one lookup (retried), not one per device
