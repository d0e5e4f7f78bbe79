"""The audit line format and the append-only writer."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import datetime, timezone

from mcp_server_connectwise.audit import (
    FORMAT_VERSION,
    AuditEntry,
    AuditLog,
    audit_arguments,
    fingerprint,
    read_audit,
    utc_timestamp,
)


def _entry(**overrides) -> AuditEntry:
    values = dict(tenant="acme", principal="local", tool="add_ticket_note", args={"ticket_id": 1},
                  outcome="ok", error=None, duration_ms=12.345)
    return AuditEntry(**(values | overrides))


def test_free_text_is_fingerprinted_ids_and_names_kept_unset_dropped():
    args = audit_arguments(
        {"ticket_id": 7, "text": "call the customer back", "note_type": "internal", "tenant": None},
        free_text={"text"},
    )
    assert args == {
        "ticket_id": 7,
        "text": {"len": 22, "sha256": hashlib.sha256(b"call the customer back").hexdigest()},
        "note_type": "internal",
    }
    assert "call the customer" not in json.dumps(args)


def test_fingerprint_counts_characters_and_hashes_utf8():
    assert fingerprint("é") == {"len": 1, "sha256": hashlib.sha256("é".encode()).hexdigest()}


def test_timestamps_are_utc_with_milliseconds():
    moment = datetime(2026, 1, 31, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert utc_timestamp(moment) == "2026-01-31T10:00:00.123Z"


def test_one_line_per_entry_in_a_stable_key_order(tmp_path):
    log = AuditLog(tmp_path / "sub" / "audit.jsonl")
    log.write(_entry(), durable=False)
    log.write(_entry(outcome="refused", error="no\nnewline leaks", requests=[{"method": "GET"}]), durable=True)
    log.close()
    lines = (tmp_path / "sub" / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == ["v", "ts", "tenant", "principal", "tool", "args", "outcome", "error",
                           "duration_ms", "requests", "written"]
    assert first["v"] == FORMAT_VERSION and first["duration_ms"] == 12.3
    assert read_audit(tmp_path / "sub" / "audit.jsonl")[1]["error"] == "no\nnewline leaks"


def test_the_file_is_private_and_appended_to(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"v":1,"earlier":true}\n')
    os.chmod(path, 0o600)
    log = AuditLog(path)
    log.write(_entry(), durable=True)
    log.close()
    assert len(read_audit(path)) == 2
    fresh = AuditLog(tmp_path / "new.jsonl")
    fresh.write(_entry(), durable=False)
    fresh.close()
    assert stat.S_IMODE(os.stat(tmp_path / "new.jsonl").st_mode) == 0o600
