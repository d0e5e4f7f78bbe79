"""The audit trail as the tools write it: one line per call, before the answer, no secrets, no free text."""

from __future__ import annotations

import hashlib
import logging

import anyio
import httpx2
import pytest

from mcp_server_connectwise.audit import read_audit
from mcp_server_connectwise.toolsets import REGISTRY
from mcp_server_connectwise.toolsets import runtime as base

from support.harness import SANDBOX, make_harness
from support.registry import WRITES


def an_open_ticket(harness):
    statuses = harness.store()["statuses"]
    return next(
        t
        for t in harness.store()["tickets"].values()
        if t["board"]["name"] == "Service Desk" and not statuses[t["status"]["id"]]["timeEntryNotAllowed"]
    )


async def test_every_call_leaves_exactly_one_line(tmp_path):
    harness = make_harness(tmp_path)
    ticket = an_open_ticket(harness)
    calls = [
        ("search_tickets", {"status": "New"}, "ok"),
        ("get_ticket_details", {"ticket_id": ticket["id"]}, "ok"),
        ("get_ticket_details", {"ticket_id": 77}, "refused"),
        ("add_ticket_note", {"ticket_id": ticket["id"], "text": "Called the customer at 555-0100."}, "ok"),
        ("update_ticket", {"ticket_id": ticket["id"], "status": "Nope"}, "refused"),
        ("update_ticket", {"ticket_id": ticket["id"], "status": "Scheduled"}, "ok"),
        ("create_time_entry", {"ticket_id": ticket["id"], "start": "2026-11-02T09:00:00Z", "hours": 0.25}, "ok"),
        ("list_board_statuses", {"board": "Alerts", "tenant": "elsewhere"}, "refused"),
    ]
    async with harness.client() as client:
        for name, arguments, _ in calls:
            await client.call_tool(name, arguments)
    lines = harness.audit()
    assert [(line["tool"], line["outcome"]) for line in lines] == [(name, outcome) for name, _, outcome in calls]
    assert all(line["principal"] == "local" and line["ts"].endswith("Z") for line in lines)
    # Each line lists exactly the requests its call made, in the sandbox's order.
    logged = [(r["method"], r["path"], r["status"]) for r in harness.requests()]
    audited = [(r["method"], r["path"], r["status"]) for line in lines for r in line["requests"]]
    assert sorted(audited) == sorted(logged)


async def test_writes_record_what_they_wrote_and_free_text_only_as_a_fingerprint(tmp_path):
    harness = make_harness(tmp_path)
    ticket = an_open_ticket(harness)
    text = "Customer says the password is hunter2"
    status = "Scheduled" if ticket["status"]["name"] != "Scheduled" else "Assigned"
    async with harness.client() as client:
        note = await client.call_tool("add_ticket_note", {"ticket_id": ticket["id"], "text": text})
        update = await client.call_tool(
            "update_ticket", {"ticket_id": ticket["id"], "status": status, "summary": "Password issue"}
        )
        entry = await client.call_tool(
            "create_time_entry",
            {"ticket_id": ticket["id"], "start": "2026-11-02T09:00:00Z", "hours": 0.5, "notes": "secret notes"},
        )
    note_line, update_line, time_line = harness.audit()
    assert note_line["args"]["text"] == {"len": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    assert note_line["written"] == [
        {
            "record": "note",
            "id": note.structured_content["note_id"],
            "ticket_id": ticket["id"],
            "note_type": "internal",
            "notify": False,
        }
    ]
    assert update_line["written"] == [{"record": "ticket", "id": ticket["id"], "fields": ["status", "summary"]}]
    assert update_line["args"]["summary"]["len"] == len("Password issue")
    assert time_line["written"][0]["id"] == entry.structured_content["time_entry_id"]
    raw = harness.audit_path.read_text()
    for secret in ("hunter2", "Password issue", "secret notes"):
        assert secret not in raw
    assert update.is_error is False


async def test_the_line_is_on_disk_before_the_answer_and_writes_are_fsynced(tmp_path, monkeypatch):
    harness = make_harness(tmp_path)
    ticket = an_open_ticket(harness)
    seen: list[tuple[str, int]] = []
    original = base.to_result

    def check_audit_first(model, *, untrusted):
        seen.append(("line", len(harness.audit())))
        return original(model, untrusted=untrusted)

    fsyncs = []
    monkeypatch.setattr(base, "to_result", check_audit_first)
    monkeypatch.setattr("os.fsync", lambda fd: fsyncs.append(fd))
    async with harness.client() as client:
        await client.call_tool("list_board_statuses", {"board": "Alerts"})
        await client.call_tool("add_ticket_note", {"ticket_id": ticket["id"], "text": "x"})
    assert seen == [("line", 1), ("line", 2)]
    assert len(fsyncs) == 2  # the write's intent and its outcome; never a read


class ChecksTheIntentFirst(httpx2.AsyncBaseTransport):
    """In front of the sandbox: each write that arrives must already have its intent line on disk."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, audit_path) -> None:
        self.inner, self.audit_path, self.seen = inner, audit_path, []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "GET":
            intents = [line for line in read_audit(self.audit_path) if line.get("kind") == "intent"]
            self.seen.append((request.method, intents[-1]["path"] if intents else None))
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("tool", sorted(WRITES))
async def test_every_write_is_announced_on_disk_before_it_is_sent_and_its_outcome_names_it(tmp_path, tool):
    transports: list[ChecksTheIntentFirst] = []

    def wrap(inner: httpx2.AsyncBaseTransport) -> ChecksTheIntentFirst:
        transports.append(ChecksTheIntentFirst(inner, tmp_path / "audit.jsonl"))
        return transports[-1]

    harness = make_harness(tmp_path, wrap=wrap)
    [transport] = transports
    async with harness.client() as client:
        result = await client.call_tool(tool, REGISTRY.by_name[tool].examples[0])
    assert result.is_error is False, result.content[0].text
    writes = [r for r in harness.requests() if r["method"] != "GET"]
    assert transport.seen and [path for _, path in transport.seen] == [r["path"] for r in writes]
    intents = [line for line in read_audit(harness.audit_path) if line.get("kind") == "intent"]
    [call] = harness.audit()
    assert call["intents"] == [intent["id"] for intent in intents]
    assert all(intent["tool"] == tool and intent["principal"] == "local" for intent in intents)
    for name in REGISTRY.by_name[tool].free_text:  # free text only as length and hash, in args and body
        text = REGISTRY.by_name[tool].examples[0].get(name)
        if text is not None and not isinstance(text, str):  # a list of records, fingerprinted as its JSON
            assert set(call["args"][name]) == {"len", "sha256"} and all(
                set(intent["args"][name]) == {"len", "sha256"} for intent in intents
            )
            continue
        assert text is None or text not in harness.audit_path.read_text()


async def test_no_secret_in_the_audit_or_the_logs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    harness = make_harness(tmp_path)
    async with harness.client() as client:
        await client.call_tool("search_tickets", {"company": "Müller"})
        await client.call_tool("get_ticket_details", {"ticket_id": 1002})
    everything = harness.audit_path.read_text() + caplog.text
    assert SANDBOX.private_key not in everything and SANDBOX.public_key not in everything
    assert "Authorization" not in everything and "Basic " not in everything


async def test_calls_the_sdk_rejects_are_audited_too_without_their_text(tmp_path):
    harness = make_harness(tmp_path)
    async with harness.client() as client:
        bad_id = await client.call_tool("get_ticket_details", {"ticket_id": 0})
        empty_note = await client.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "", "note_type": "secret"})
        unknown = await client.call_tool("delete_everything", {"why": "because I said so"})
    assert bad_id.is_error and empty_note.is_error and unknown.is_error
    lines = harness.audit()
    assert [(line["tool"], line["outcome"]) for line in lines] == [
        ("get_ticket_details", "refused"),
        ("add_ticket_note", "refused"),
        ("delete_everything", "refused"),
    ]
    assert lines[0]["error"] == "ticket_id must be at least 1; nothing was sent."
    assert lines[1]["error"] == "text needs at least 1 character (and 1 more argument does not fit); nothing was sent."
    assert lines[2]["error"] == "no such tool" and lines[2]["args"]["why"]["len"] == len("because I said so")
    assert "because I said so" not in harness.audit_path.read_text()
    assert harness.requests() == []


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_call_cancelled_mid_write_is_still_audited_as_of_unknown_outcome(tmp_path, mode):
    harness = make_harness(tmp_path)
    harness.sandboxes["acme"].state.faults.latency_ms = 400  # slow enough to cancel the call in flight
    async with harness.client(mode=mode) as client:
        with anyio.move_on_after(0.15):
            await client.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "Rebooted."})
        await anyio.sleep(0.6)
    [line] = harness.audit()
    assert line["tool"] == "add_ticket_note" and line["outcome"] == "unknown" and line["error"] == "cancelled"


async def _call_expecting_an_internal_error(client, name, arguments):
    try:
        result = await client.call_tool(name, arguments)
    except Exception:  # the in-memory client raises the server's exceptions
        return
    assert result.is_error


async def test_an_internal_error_after_a_write_was_sent_is_audited_as_unknown(tmp_path, monkeypatch):
    from mcp_server_connectwise.services import notes

    def broken(**_fields):
        raise RuntimeError("bug after the POST (test)")

    monkeypatch.setattr(notes, "NoteAdded", broken)
    harness = make_harness(tmp_path)
    ticket = an_open_ticket(harness)
    async with harness.client() as client:
        await _call_expecting_an_internal_error(client, "add_ticket_note", {"ticket_id": ticket["id"], "text": "Hi."})
    [line] = harness.audit()
    assert (line["outcome"], line["error"]) == ("unknown", "internal error")
    assert [r["method"] for r in line["requests"]] == ["POST"]


async def test_an_internal_error_in_a_write_tool_before_any_write_is_audited_as_an_error(tmp_path, monkeypatch):
    from mcp_server_connectwise.services import notes

    def broken(*_args):
        raise RuntimeError("bug before the POST (test)")

    monkeypatch.setattr(notes, "note_body", broken)
    harness = make_harness(tmp_path)
    ticket = an_open_ticket(harness)
    async with harness.client() as client:
        await _call_expecting_an_internal_error(client, "add_ticket_note", {"ticket_id": ticket["id"], "text": "Hi."})
    [line] = harness.audit()
    assert (line["outcome"], line["error"]) == ("error", "internal error")
    assert harness.requests() == []


async def test_a_failure_finding_the_unknown_arguments_is_audited_like_any_other(tmp_path):
    from mcp_server_connectwise.audit import AuditLog, read_calls
    from mcp_server_connectwise.config import AppConfig, AuditConfig
    from mcp_server_connectwise.connectwise import ApiCredentials
    from mcp_server_connectwise.services.tenancy import Tenants
    from mcp_server_connectwise.toolsets import REGISTRY
    from mcp_server_connectwise.toolsets.definition import Offer

    from support.harness import tenant_config

    definition = REGISTRY.by_name["add_ticket_note"]
    config = AppConfig(audit=AuditConfig(path=tmp_path / "audit.jsonl"), tenants={"acme": tenant_config("acme")})
    tenants = Tenants(config, credentials={"acme": ApiCredentials("public", "private")})
    runtime = base.ToolRuntime(tenants, AuditLog(config.audit.path), "stdio:tester", Offer.of([definition]))

    class BrokenContext:
        @property
        def request_context(self):
            raise RuntimeError("no request context (test)")

    tool = base.bind(definition, runtime)
    with pytest.raises(RuntimeError):
        await tool(BrokenContext(), ticket_id=1001, text="Hi.")
    [line] = read_calls(config.audit.path)
    assert (line["tool"], line["outcome"], line["error"]) == ("add_ticket_note", "error", "internal error")
