"""The audit line format and the append-only writer: fsync, refusing when the log cannot be written (or locked)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from mcp_server_connectwise.audit import (
    FORMAT_VERSION,
    AuditEntry,
    AuditLog,
    AuditUnavailable,
    audit_arguments,
    fingerprint,
    lock_path,
    read_audit,
    rotated_files,
    utc_timestamp,
    verify_audit,
)


def _entry(**overrides) -> AuditEntry:
    values = dict(
        tenant="acme",
        principal="local",
        tool="add_ticket_note",
        args={"ticket_id": 1},
        outcome="ok",
        error=None,
        duration_ms=12.345,
    )
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


def test_free_text_that_is_not_text_is_fingerprinted_as_its_json():
    from pydantic import BaseModel

    class Device(BaseModel):
        name: str
        notes: str | None = None

    devices = [Device(name="WS-1", notes="spare"), Device(name="WS-2")]
    args = audit_arguments({"company": "ACME", "devices": devices}, free_text={"devices"})
    as_json = json.dumps([d.model_dump() for d in devices], sort_keys=True, ensure_ascii=False)
    assert args == {"company": "ACME", "devices": fingerprint(as_json)}  # the same batch, the same fingerprint


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
    assert list(first) == [
        "v",
        "prev",
        "ts",
        "tenant",
        "principal",
        "tool",
        "args",
        "outcome",
        "error",
        "duration_ms",
        "requests",
        "written",
    ]
    assert first["v"] == FORMAT_VERSION == 2 and first["duration_ms"] == 12.3
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


def test_unknown_is_an_outcome_a_line_can_record(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.write(_entry(outcome="unknown", error="the answer was lost; the note may or may not exist"), durable=True)
    log.close()
    assert read_audit(tmp_path / "audit.jsonl")[0]["outcome"] == "unknown"


def test_durable_writes_are_fsynced_and_others_are_not(tmp_path, monkeypatch):
    fsynced: list[int] = []
    monkeypatch.setattr(os, "fsync", fsynced.append)
    log = AuditLog(tmp_path / "audit.jsonl")
    log.write(_entry(), durable=False)
    assert fsynced == []
    log.write(_entry(), durable=True)
    log.write(_entry(), durable=True)
    log.close()
    assert len(fsynced) == 2


def test_check_writable_passes_for_a_new_log_in_a_new_directory(tmp_path):
    log = AuditLog(tmp_path / "new" / "dir" / "audit.jsonl")
    log.check_writable()
    log.close()


# This machine runs as root, for whom chmod denies nothing: unwritable paths are made of wrong file types instead.
def test_check_writable_refuses_when_the_directory_cannot_be_created(tmp_path):
    (tmp_path / "plain-file").write_text("")
    log = AuditLog(tmp_path / "plain-file" / "audit.jsonl")
    with pytest.raises(AuditUnavailable) as refused:
        log.check_writable()
    assert str(refused.value) == "The audit log cannot be written: a parent of its path is not a directory."
    with pytest.raises(AuditUnavailable):
        log.write(_entry(), durable=True)


def test_check_writable_refuses_a_directory_as_the_log_file(tmp_path):
    (tmp_path / "audit.jsonl").mkdir()
    with pytest.raises(AuditUnavailable, match=r"^The audit log cannot be written: its path is a directory\.$"):
        AuditLog(tmp_path / "audit.jsonl").check_writable()


def test_check_writable_refuses_when_the_disk_is_nearly_full(tmp_path, monkeypatch):
    real_statvfs = os.fstatvfs

    def nearly_full(fd):
        space = real_statvfs(fd)
        return os.statvfs_result((space.f_bsize, 4096, space.f_blocks, 3, 3, *tuple(space)[5:]))

    monkeypatch.setattr(os, "fstatvfs", nearly_full)
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(AuditUnavailable, match="the disk is full"):
        log.check_writable()
    log.close()


def test_a_write_that_fills_the_disk_leaves_no_torn_line_and_refuses_until_a_write_succeeds(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.write(_entry(), durable=True)
    real_write = os.write

    def disk_fills_mid_line(fd, data):
        if len(data) > 10:
            return real_write(fd, bytes(data[:10]))  # a short write, then the next one fails
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", disk_fills_mid_line)
    with pytest.raises(AuditUnavailable) as failed:
        log.write(_entry(), durable=True)
    assert str(failed.value) == "The audit log cannot be written: the disk is full."
    monkeypatch.setattr(os, "write", real_write)
    assert len(path.read_bytes().splitlines()) == 1 and path.read_bytes().endswith(b"\n")
    with pytest.raises(AuditUnavailable, match="the disk is full"):
        log.check_writable()  # the failure stands until a line is written again
    log.write(_entry(outcome="refused"), durable=False)
    log.check_writable()
    log.close()
    assert verify_audit(path).intact and len(read_audit(path)) == 2


# Holds the log's lock, as a writer stuck mid-line would, until killed.
LOCK_HOLDER = """
import sys, time
from filelock import FileLock
from mcp_server_connectwise.audit import lock_path

with FileLock(lock_path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_write_waits_for_another_process_holding_the_lock_then_refuses_without_a_path(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, lock_timeout=0.3)
    log.write(_entry(), durable=True)
    assert stat.S_IMODE(os.stat(lock_path(path)).st_mode) == 0o600 and rotated_files(path) == []
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        started = time.monotonic()
        with pytest.raises(AuditUnavailable) as refused:
            log.write(_entry(), durable=True)
        assert time.monotonic() - started >= 0.3
        assert str(refused.value) == (
            "The audit log cannot be written: another process has held its lock for over 0.3 seconds."
        )
        with pytest.raises(AuditUnavailable, match="held its lock"):
            log.check_writable()
    finally:
        holder.kill()
        holder.wait(timeout=60)
        holder.stdout.close()
    log.write(_entry(), durable=True)  # the lock of a dead process is free again
    log.check_writable()
    log.close()
    assert verify_audit(path).intact and len(read_audit(path)) == 2
