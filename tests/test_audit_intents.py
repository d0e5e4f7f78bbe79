"""Writes audited before they are sent: an intent line, fsynced before the request, settled by the call's line
or by an acknowledgement; `verify` names a write whose outcome a crash (kill -9) left unknown until it is
acknowledged, and `unsettled_intents` finds it for the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from mcp_server_connectwise.audit import (
    AuditEntry,
    AuditLog,
    audit_arguments,
    audit_body,
    default_check,
    fingerprint,
    read_audit,
    unsettled_intents,
    verify_audit,
)

NOTE = "Customer says the printer on floor 3 is on fire again"


def _entry(**overrides) -> AuditEntry:
    values = dict(
        tenant="acme",
        principal="local",
        tool="add_ticket_note",
        args={"ticket_id": 1001},
        outcome="ok",
        error=None,
        duration_ms=5.0,
    )
    return AuditEntry(**(values | overrides))


def announce(log: AuditLog, ticket_id: int = 1001, text: str = NOTE) -> str:
    return log.intent(
        tenant="acme",
        principal="local",
        tool="add_ticket_note",
        arguments={"ticket_id": ticket_id, "text": text, "internal": True, "tenant": None},
        method="post",
        path=f"/service/tickets/{ticket_id}/notes?clientId=abc",
        body={"text": text, "internalAnalysisFlag": True},
        free_text={"text"},
        check=f"ticket {ticket_id}'s notes",
    )


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mcp_server_connectwise", "audit", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_intent_line_is_fsynced_and_records_the_request_with_free_text_only_as_length_and_hash(
    tmp_path, monkeypatch
):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    fsynced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsynced.append(fd), real_fsync(fd)))
    intent_id = announce(log)
    log.close()
    assert len(fsynced) == 1  # on disk before the write may be sent
    [line] = path.read_bytes().splitlines()
    record = json.loads(line)
    assert list(record) == [
        "v",
        "prev",
        "ts",
        "kind",
        "id",
        "tenant",
        "principal",
        "tool",
        "args",
        "method",
        "path",
        "body",
        "check",
    ]
    assert record["kind"] == "intent" and record["id"] == intent_id and len(intent_id) == 16
    assert record["args"] == {"ticket_id": 1001, "text": fingerprint(NOTE), "internal": True}
    assert record["args"] == audit_arguments({"ticket_id": 1001, "text": NOTE, "internal": True}, {"text"})
    assert record["body"] == {"text": fingerprint(NOTE), "internalAnalysisFlag": True}
    assert (record["method"], record["path"], record["check"]) == (
        "POST",
        "/service/tickets/1001/notes",  # no query string
        "ticket 1001's notes",
    )
    assert NOTE.encode() not in path.read_bytes() and b"clientId" not in path.read_bytes()


def test_a_request_body_hides_free_text_by_name_at_any_depth_and_in_json_patch_operations():
    operations = [
        {"op": "replace", "path": "status", "value": {"id": 5, "name": "Closed"}},
        {"op": "replace", "path": "/summary", "value": "Server room flooded"},
    ]
    assert audit_body(operations, {"summary"}) == [
        {"op": "replace", "path": "status", "value": {"id": 5, "name": "Closed"}},
        {"op": "replace", "path": "/summary", "value": fingerprint("Server room flooded")},
    ]
    entry = {"chargeToId": 1001, "notes": "fixed it", "internalNotes": "charged twice", "member": {"identifier": "al"}}
    assert audit_body(entry, {"notes", "internal_notes"}) == {
        "chargeToId": 1001,
        "notes": fingerprint("fixed it"),
        "internalNotes": fingerprint("charged twice"),
        "member": {"identifier": "al"},
    }
    assert audit_body(None, {"text"}) is None


def test_what_to_check_defaults_to_the_record_the_path_names():
    assert default_check("POST", "/service/tickets/1001/notes") == "ticket 1001's notes"
    assert default_check("PATCH", "/service/tickets/1001") == "ticket 1001"
    assert default_check("POST", "/time/entries") == "time entries"
    assert default_check("POST", "/company/companies/7/notes") == "company 7's notes"
    assert default_check("PUT", "/system/info") == "the result of PUT /system/info"


def test_a_call_line_naming_its_intent_settles_it_and_lines_without_intents_keep_their_old_form(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.write(_entry(tool="get_ticket_details"), durable=False)
    first, second = announce(log, 1001), announce(log, 1002)
    assert [intent.id for intent in unsettled_intents(path)] == [first, second]
    log.write(_entry(intents=[first]), durable=True)
    [left] = unsettled_intents(path)
    assert (left.id, left.tenant, left.principal, left.tool, left.method, left.path) == (
        second,
        "acme",
        "local",
        "add_ticket_note",
        "POST",
        "/service/tickets/1002/notes",
    )
    # What a server matches a retry on: the same tool, tenant and recorded arguments.
    assert left.args == audit_arguments({"ticket_id": 1002, "text": NOTE, "internal": True}, {"text"})
    assert (left.file, left.line, left.time.tzinfo is not None) == (path, 3, True)
    log.write(_entry(intents=[second]), durable=True)
    log.close()
    assert unsettled_intents(path) == []
    records = read_audit(path)
    assert "intents" not in records[0] and records[3]["intents"] == [first] and records[4]["intents"] == [second]
    result = verify_audit(path)
    assert result.intact and result.passed and result.lines == 5 and result.unsettled == []


def test_an_unsettled_intent_fails_verification_until_acknowledged_and_the_ack_is_in_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=2000)
    for number in range(8):  # the intent ends up in a rotated file, its acknowledgement in a later one
        log.write(_entry(tool="get_ticket_details", args={"ticket_id": number}), durable=False)
    intent_id = announce(log)
    for number in range(8):
        log.write(_entry(tool="get_ticket_details", args={"ticket_id": number}), durable=False)
    result = verify_audit(path)
    assert result.intact and not result.passed and [intent.id for intent in result.unsettled] == [intent_id]
    assert result.unsettled[0].file != path
    log.acknowledge([intent_id], principal="local")
    log.close()
    result = verify_audit(path)
    assert result.intact and result.passed and result.lines == 18 and len(result.files) > 2
    ack = read_audit(path)[-1]
    assert list(ack) == ["v", "prev", "ts", "kind", "principal", "intents"]
    assert (ack["kind"], ack["intents"]) == ("ack", [intent_id])


def test_a_log_written_before_intents_existed_still_verifies_and_carries_on_with_them(tmp_path):
    path = tmp_path / "audit.jsonl"
    # Lines exactly as the writer made them before intents: the key list of a version 2 call line.
    old = AuditLog(path)
    for number in range(3):
        old.write(_entry(args={"ticket_id": number}), durable=False)
    old.close()
    assert all(list(record)[-1] == "written" for record in read_audit(path))
    log = AuditLog(path)
    intent_id = announce(log)
    log.write(_entry(intents=[intent_id]), durable=True)
    log.close()
    result = verify_audit(path)
    assert result.passed and result.lines == 5


# Writes an ordinary line and an intent, says so, then hangs as a process would while its POST is in flight.
INTERRUPTED_WRITER = """
import sys, time
from mcp_server_connectwise.audit import AuditEntry, AuditLog

log = AuditLog(sys.argv[1])
log.write(AuditEntry(tenant="acme", principal="stdio:alice", tool="get_ticket_details", args={"ticket_id": 1001},
                     outcome="ok", error=None, duration_ms=3.0), durable=False)
intent = log.intent(tenant="acme", principal="stdio:alice", tool="add_ticket_note",
                    arguments={"ticket_id": 1001, "text": sys.argv[2]}, method="POST",
                    path="/service/tickets/1001/notes", body={"text": sys.argv[2]}, free_text={"text"})
print(intent, flush=True)
time.sleep(120)
"""


def test_a_write_killed_between_its_intent_and_its_outcome_is_named_by_verify_until_acknowledged(tmp_path):
    path = tmp_path / "audit.jsonl"
    writer = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_WRITER, str(path), NOTE], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        intent_id = writer.stdout.readline().strip()
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=60)
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL and len(intent_id) == 16

    [intent] = unsettled_intents(path)
    assert (intent.id, intent.tenant, intent.principal, intent.tool) == (
        intent_id,
        "acme",
        "stdio:alice",
        "add_ticket_note",
    )
    verify = run_cli("verify", str(path))
    assert verify.returncode == 1, verify.stdout + verify.stderr
    [named, verdict] = verify.stdout.splitlines()
    assert named == (
        f"{path}:2: write intent {intent_id} has no outcome: add_ticket_note in tenant acme by stdio:alice at "
        f"{intent.ts} (POST /service/tickets/1001/notes); it may or may not have reached ConnectWise: check "
        "ticket 1001's notes"
    )
    assert verdict == (
        f"audit log {path}: intact, 2 line(s) in 1 file(s); 1 write intent(s) without an outcome: check them in "
        f"ConnectWise, then run `mcp-server-connectwise audit ack INTENT_ID ... {path}`"
    )
    assert NOTE not in verify.stdout and NOTE.encode() not in path.read_bytes()

    # The dead process's lock was released: another writer carries on the same chain.
    log = AuditLog(path)
    log.write(_entry(tool="get_ticket_details"), durable=False)
    log.close()

    ack = run_cli("ack", intent_id, str(path))
    assert ack.returncode == 0, ack.stdout + ack.stderr
    assert ack.stdout.splitlines() == [
        f"acknowledged {intent_id}: add_ticket_note in tenant acme at {intent.ts}",
        f"audit log {path}: 1 write intent(s) acknowledged",
    ]
    verify = run_cli("verify", str(path))
    assert (verify.returncode, verify.stdout) == (0, f"audit log {path}: intact, 4 line(s) in 1 file(s)\n")
    assert unsettled_intents(path) == []
    assert read_audit(path)[-1]["kind"] == "ack"


def test_unsettled_intents_of_a_missing_log_are_none(tmp_path):
    assert unsettled_intents(tmp_path / "absent.jsonl") == []
    assert not (tmp_path / "absent.jsonl.lock").exists()  # reading creates nothing
