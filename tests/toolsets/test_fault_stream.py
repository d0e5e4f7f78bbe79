"""Issue 5, "writes never lost, never doubled", proved under a stream of faults.

Notes, time entries and tickets go through a real MCP client and our server, over a real socket, through a proxy that
loses answers after the write happened, resets connections, answers 502 and 429, to a sandbox (served by
uvicorn) that injects its own 500s, 503s and dropped connections. Then the sandbox's store is reconciled with
what each call reported.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from mcp import Client

from mcp_server_connectwise.audit import read_calls
from mcp_server_connectwise.config import AppConfig, AuditConfig
from mcp_server_connectwise.connectwise import (
    AmbiguousWriteError,
    ClientSettings,
    ConnectWiseClient,
)
from mcp_server_connectwise.sandbox import SandboxSettings
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.server import build_server

from support import faults
from support.fault_proxy import RETRY_AFTER_SECONDS, ProxiedSandbox, proxied_sandbox, random_faults

CALLS = 150
TIME_LIMIT_SECONDS = 120
# Per request at the proxy; the sandbox adds its own faults (SANDBOX_FAULT_RATE) behind it.
PROXY_FAULTS = {"drop_after_commit": 0.08, "reset_before": 0.06, "bad_gateway": 0.04, "rate_limited": 0.015}
SANDBOX_FAULT_RATE = 0.04


@dataclass
class Call:
    tool: str
    text: str  # unique: how its record is found in the store
    arguments: dict
    result_id: int | None = None
    outcome: str | None = None  # from the call's audit line: ok, error, unknown
    error: str | None = None


def plan_calls(store, rng: random.Random) -> list[Call]:
    statuses = store["statuses"]
    tickets = sorted(store["tickets"])
    time_tickets = [
        t["id"] for t in store["tickets"].values() if not statuses[t["status"]["id"]]["timeEntryNotAllowed"]
    ]
    companies = sorted(company["identifier"] for company in store["companies"].values())
    start = datetime(2026, 11, 2, 8, tzinfo=timezone.utc)
    calls = []
    for number in range(CALLS):
        kind = rng.random()
        if kind < 0.25:
            text = f"Stream ticket {number}: the file server is unreachable"
            # Every summary is alike: allow_duplicate keeps the duplicate check from stopping the stream.
            arguments = {"company": rng.choice(companies), "summary": text, "allow_duplicate": True}
            calls.append(Call("create_ticket", text, arguments))
        elif kind < 0.6:
            text = f"Stream note {number}: checked the backups."
            calls.append(
                Call(
                    "add_ticket_note",
                    text,
                    {
                        "ticket_id": rng.choice(tickets),
                        "text": text,
                        "note_type": rng.choice(["internal", "discussion"]),
                    },
                )
            )
        else:
            text = f"Stream time {number}: patched the server."
            calls.append(
                Call(
                    "create_time_entry",
                    text,
                    {
                        "ticket_id": rng.choice(time_tickets),
                        "start": (start + timedelta(hours=number)).isoformat(),
                        "hours": 0.5,
                        "notes": text,
                    },
                )
            )
    return calls


RESULT_ID = {"add_ticket_note": "note_id", "create_time_entry": "time_entry_id", "create_ticket": "ticket_id"}


def records_of(store, call: Call) -> list[dict]:
    if call.tool == "create_ticket":
        return [ticket for ticket in store["tickets"].values() if ticket["summary"] == call.text]
    if call.tool == "add_ticket_note":
        return [note for note in store["notes"].values() if note["text"] == call.text]
    return [entry for entry in store["timeEntries"].values() if entry.get("notes") == call.text]


@pytest.fixture
def fast_recovery(monkeypatch):
    faults.fast_recovery(monkeypatch)


async def test_a_stream_of_writes_under_faults_loses_and_doubles_nothing(tmp_path, fast_recovery):
    settings = SandboxSettings(tickets=200, fault_rate=SANDBOX_FAULT_RATE, seed=7)
    async with (
        asyncio.timeout(TIME_LIMIT_SECONDS),
        proxied_sandbox(settings, random_faults(11, PROXY_FAULTS)) as served,
    ):
        sandbox = sandbox_tenant("acme", served.app, base_url=served.base_url, requests_per_minute=5000)
        config = AppConfig(
            default_tenant="acme", audit=AuditConfig(path=tmp_path / "audit.jsonl"), tenants={"acme": sandbox.config}
        )
        server = build_server(config, credentials={"acme": sandbox.credentials})  # over the network, through the proxy
        store = served.app.state.store
        records_before = _records(store)
        calls = plan_calls(store, random.Random(3))
        async with Client(server, raise_exceptions=True) as client:
            for call in calls:
                result = await client.call_tool(call.tool, call.arguments)
                if not result.is_error:
                    content = result.structured_content
                    call.result_id = content[RESULT_ID[call.tool]]
                else:
                    call.error = result.content[0].text

    lines = [line for line in read_calls(tmp_path / "audit.jsonl") if line["tool"] in RESULT_ID]
    assert len(lines) == len(calls)
    for call, line in zip(calls, lines, strict=True):
        call.outcome = line["outcome"]
        assert (call.outcome == "ok") == (call.result_id is not None), (call, line)
        assert [record["id"] for record in line["written"]] == ([call.result_id] if call.outcome == "ok" else []), line

    for call in calls:
        records = records_of(store, call)
        if call.outcome == "ok":  # reported done: exactly one record, the one reported
            assert [record["id"] for record in records] == [call.result_id], call
        elif call.outcome == "error":  # reported failed: nothing written
            assert records == [], call
        else:  # unknown: at most one record, never two
            assert call.outcome == "unknown" and len(records) <= 1, call
    written = sum(len(records_of(store, call)) for call in calls)
    assert _records(store) - records_before == written  # and nothing else was
    unknown = [call for call in calls if call.outcome == "unknown"]
    assert unknown == []  # every look got through: the outcome was always found out

    # Every 429 was honoured: the same request came back no sooner than Retry-After.
    for index, request in enumerate(served.log):
        if request.action == "rate_limited":
            again = next(later for later in served.log[index + 1 :] if later.key == request.key)
            assert again.arrived - request.arrived >= RETRY_AFTER_SECONDS - 0.05

    proxy_faults = Counter(request.action for request in served.log)
    sandbox_faults = served.app.state.faults.injected
    recovered = [line for line in lines if line["outcome"] == "ok" and _looked(line)]
    recovered_kinds = Counter(line["tool"] for line in recovered)
    summary = (
        f"{Counter(call.outcome for call in calls)}; recovered {dict(recovered_kinds)}; proxy {dict(proxy_faults)}; sandbox {dict(sandbox_faults)}; "
        f"{len(recovered)} writes confirmed by looking"
    )
    print(summary)
    assert all(proxy_faults[action] >= 2 for action in PROXY_FAULTS), summary
    assert sum(sandbox_faults.values()) >= 5 and len(recovered) >= 10, summary
    assert all(recovered_kinds[tool] >= 2 for tool in RESULT_ID), summary  # each kind of write was looked for


def _records(store) -> int:
    """The records a call of the stream can write. A ticket's POST may carry its first notes: none here."""
    return len(store["notes"]) + len(store["timeEntries"]) + len(store["tickets"])


def _looked(line: dict) -> bool:
    """Whether the call listed records after its POST: it looked for a write whose answer was lost."""
    methods = [request["method"] for request in line["requests"]]
    return "POST" in methods and "GET" in methods[methods.index("POST") :]


# --- the proxy does what it says -------------------------------------------------------------------------


def raw_client(served: ProxiedSandbox) -> ConnectWiseClient:
    """A client of the proxied sandbox, over the network."""
    sandbox = sandbox_tenant("acme", served.app, base_url=served.base_url)
    tenant = sandbox.config
    return ConnectWiseClient(
        ClientSettings(company_id=tenant.company_id, client_id=tenant.client_id, base_url=tenant.base_url),
        sandbox.credentials,
    )


NOTE = {"text": "Proxy check.", "internalAnalysisFlag": True}


@pytest.mark.parametrize(
    ("action", "saved"), [("drop_after_commit", True), ("reset_before", False), ("bad_gateway", False)]
)
async def test_the_proxy_loses_answers_as_told(action, saved):
    actions = iter([action])
    async with proxied_sandbox(SandboxSettings(tickets=20), lambda request: next(actions, "pass")) as served:
        async with raw_client(served) as client:
            with pytest.raises(AmbiguousWriteError):
                await client.post("/service/tickets/1001/notes", NOTE)
    assert any(note["text"] == NOTE["text"] for note in served.app.state.store["notes"].values()) is saved


async def test_the_proxy_rate_limits_with_retry_after_and_the_client_waits():
    actions = iter(["rate_limited"])
    async with proxied_sandbox(SandboxSettings(tickets=20), lambda request: next(actions, "pass")) as served:
        async with raw_client(served) as client:
            created = await client.post("/service/tickets/1001/notes", NOTE)
    first, second = served.log
    assert (first.action, second.action) == ("rate_limited", "pass") and created["text"] == NOTE["text"]
    assert second.arrived - first.arrived >= RETRY_AFTER_SECONDS - 0.05
