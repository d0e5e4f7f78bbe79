"""The audit hash chain on real files: it continues across reopening and rotation, stays linear under concurrent
writers (tasks, threads and separate processes), and `verify_audit` names the first deleted, edited, reordered, torn or missing line or file."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mcp_server_connectwise.audit import (
    DEFAULT_MAX_BYTES,
    GENESIS,
    AuditEntry,
    AuditLog,
    line_hash,
    read_audit,
    rotated_files,
    verify_audit,
)


def _entry(number: int = 0) -> AuditEntry:
    return AuditEntry(
        tenant="acme",
        principal="local",
        tool="get_ticket_details",
        args={"ticket_id": number},
        outcome="ok",
        error=None,
        duration_ms=1.0,
    )


def write_log(path: Path, count: int, **options) -> AuditLog:
    log = AuditLog(path, **options)
    for number in range(count):
        log.write(_entry(number), durable=False)
    log.close()
    return log


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def only_finding(path: Path) -> tuple[str, int | None, str]:
    result = verify_audit(path)
    assert len(result.findings) == 1, result.findings
    finding = result.findings[0]
    return finding.file.name, finding.line, finding.reason


def test_a_fresh_log_starts_at_genesis_and_each_line_hashes_the_one_before(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    raw = path.read_bytes().splitlines()
    records = read_audit(path)
    assert records[0]["prev"] == GENESIS == "0" * 64
    assert [record["prev"] for record in records[1:]] == [line_hash(line) for line in raw[:-1]]
    result = verify_audit(path)
    assert result.intact and result.lines == 3 and result.files == [path]


def test_the_chain_continues_across_reopening(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    write_log(path, 2)
    assert read_audit(path)[3]["prev"] == line_hash(path.read_bytes().splitlines()[2])
    result = verify_audit(path)
    assert result.intact and result.lines == 5


def test_reopening_reads_only_the_tail_of_a_large_log(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    write_log(path, 3000)  # about 0.8 MB
    read_sizes: list[int] = []
    real_pread = os.pread

    def counted(fd, size, offset):
        read_sizes.append(size)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", counted)
    write_log(path, 1)
    assert sum(read_sizes) < 20_000
    assert verify_audit(path).intact


def test_verify_catches_a_deleted_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 6)
    lines = lines_of(path)
    path.write_bytes(b"".join(lines[:2] + lines[3:]))
    assert only_finding(path) == (
        "audit.jsonl",
        3,
        "does not follow audit.jsonl line 2 (prev mismatch): that line was edited, or lines after it were deleted",
    )


def test_verify_catches_a_line_with_one_character_changed(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 6)
    lines = lines_of(path)
    lines[3] = lines[3].replace(b'"ticket_id":3', b'"ticket_id":8')
    path.write_bytes(b"".join(lines))
    name, line, reason = only_finding(path)
    assert (name, line) == ("audit.jsonl", 5) and reason.startswith("does not follow audit.jsonl line 4")


def test_verify_catches_an_edited_first_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    lines = lines_of(path)
    lines[0] = lines[0].replace(b'"outcome":"ok"', b'"outcome":"no"')
    path.write_bytes(b"".join(lines))
    assert only_finding(path)[:2] == ("audit.jsonl", 2)


def test_verify_catches_two_lines_swapped(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 8)
    lines = lines_of(path)
    lines[3], lines[4] = lines[4], lines[3]
    path.write_bytes(b"".join(lines))
    assert only_finding(path) == ("audit.jsonl", 4, "out of order: it belongs after audit.jsonl line 5")


def test_verify_catches_a_line_moved_later_or_earlier(tmp_path):
    later, earlier = tmp_path / "later.jsonl", tmp_path / "earlier.jsonl"
    for path in (later, earlier):
        write_log(path, 8)
    lines = lines_of(later)
    lines.insert(5, lines.pop(1))  # 0 2 3 4 5 1 6 7: the line after the gap names the moved one
    later.write_bytes(b"".join(lines))
    assert only_finding(later) == ("later.jsonl", 2, "out of order: it belongs after later.jsonl line 6")
    lines = lines_of(earlier)
    lines.insert(1, lines.pop(5))  # 0 5 1 2 3 4 6 7
    earlier.write_bytes(b"".join(lines))
    assert only_finding(earlier) == ("earlier.jsonl", 2, "out of order: it belongs after earlier.jsonl line 6")


def test_verify_catches_a_line_copied_in_again(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 5)
    lines = lines_of(path)
    lines.insert(3, lines[1])
    path.write_bytes(b"".join(lines))
    assert only_finding(path) == (
        "audit.jsonl",
        4,
        "out of order: it follows audit.jsonl line 1, not audit.jsonl line 3",
    )


def test_verify_refuses_lines_without_a_hash_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    lines = lines_of(path)
    record = json.loads(lines[1])
    del record["prev"]
    lines[1] = json.dumps(record, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    assert only_finding(path) == (
        "audit.jsonl",
        2,
        "no valid prev: not a hash-chained line (format v1, or the key was edited)",
    )


def test_verify_catches_a_log_whose_beginning_was_cut_off(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 4)
    path.write_bytes(b"".join(lines_of(path)[2:]))
    name, line, reason = only_finding(path)
    assert (name, line) == ("audit.jsonl", 1) and reason.startswith("the chain does not start here")


def test_a_torn_last_line_is_reported_then_the_writer_carries_on_across_it(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # a crash mid-write: the last line lost its end and its newline
    assert only_finding(path) == (
        "audit.jsonl",
        3,
        "torn: the last line is incomplete (no newline), as left by a crash mid-write",
    )
    write_log(path, 2)
    result = verify_audit(path)
    assert result.lines == 5 and [(f.line, f.reason) for f in result.findings] == [
        (3, "torn: not a complete JSON line, as left by a crash mid-write; the chain continues across it")
    ]
    # The torn line kept its prev, so a line deleted before it is still caught.
    lines = lines_of(path)
    path.write_bytes(b"".join(lines[:1] + lines[2:]))
    assert [finding.line for finding in verify_audit(path).findings] == [2, 2]


def test_rotation_keeps_the_chain_across_files(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 40, max_bytes=2000)
    rotated = rotated_files(path)
    assert [number for number, _ in rotated] == list(range(1, len(rotated) + 1)) and len(rotated) >= 3
    assert all(file.stat().st_size <= 2000 for _, file in rotated)
    first_live = read_audit(path)[0]
    assert first_live["prev"] == line_hash(rotated[-1][1].read_bytes().splitlines()[-1])
    result = verify_audit(path)
    assert result.intact and result.lines == 40 and result.files == [file for _, file in rotated] + [path]
    assert [record["args"]["ticket_id"] for file in result.files for record in read_audit(file)] == list(range(40))
    assert os.stat(rotated[0][1]).st_mode & 0o777 == 0o600


def test_a_crash_between_rotating_and_the_next_line_still_continues_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 10, max_bytes=2000)
    rotated = rotated_files(path)
    path.rename(path.with_name(f"audit.jsonl.{len(rotated) + 1}"))  # renamed, then the crash: no live file
    write_log(path, 1, max_bytes=2000)
    result = verify_audit(path)
    assert result.intact and result.lines == 11


def test_verify_catches_a_deleted_rotated_file(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 40, max_bytes=2000)
    rotated = rotated_files(path)
    rotated[1][1].unlink()
    result = verify_audit(path)
    [finding] = result.findings
    assert (finding.file.name, finding.line) == ("audit.jsonl.2", None)
    assert finding.reason == "missing: the rotated files must run audit.jsonl.1, .2, ... without a gap"
    assert result.files == [rotated[0][1]]  # the files before the gap were still checked


def test_verify_catches_the_newest_rotated_file_deleted(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 40, max_bytes=2000)
    rotated = rotated_files(path)
    rotated[-1][1].unlink()
    assert only_finding(path) == (
        "audit.jsonl",
        1,
        f"does not follow the last line of {rotated[-2][1].name} "
        "(prev mismatch): lines or a rotated file are missing, or that "
        "line was edited",
    )


async def test_concurrent_writers_produce_one_linear_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=5000)

    async def task_writes(number: int) -> None:
        await asyncio.sleep(0)
        log.write(_entry(number), durable=number % 2 == 0)

    async def thread_writes(number: int) -> None:
        await asyncio.to_thread(log.write, _entry(number), durable=False)

    await asyncio.gather(*(task_writes(n) for n in range(150)), *(thread_writes(n) for n in range(150, 250)))
    log.close()
    result = verify_audit(path)
    assert result.intact and result.lines == 250 and len(result.files) > 3
    written = sorted(record["args"]["ticket_id"] for file in result.files for record in read_audit(file))
    assert written == list(range(250))


# Run by each writer process: say it is ready, wait for the go file (so both start together), append COUNT lines.
WRITER = """
import sys, time
from pathlib import Path
from mcp_server_connectwise.audit import AuditEntry, AuditLog

path, name, count, max_bytes, go = sys.argv[1:]
log = AuditLog(path, max_bytes=int(max_bytes))
Path(go + "." + name.replace(":", "-")).touch()
while not Path(go).exists():
    time.sleep(0.0005)
for number in range(int(count)):
    entry = AuditEntry(
        tenant="acme", principal=name, tool="get_ticket_details", args={"ticket_id": number},
        outcome="ok", error=None, duration_ms=1.0,
    )
    log.write(entry, durable=number % 10 == 0)
log.close()
"""


def write_from_two_processes(path: Path, count: int, max_bytes: int) -> list[dict]:
    go = path.with_name("go")
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(count), str(max_bytes), str(go)])
        for name in ("http:alice", "stdio:bob")
    ]
    deadline = time.monotonic() + 60
    while not all(go.with_name(f"go.{name.replace(':', '-')}").exists() for name in ("http:alice", "stdio:bob")):
        assert time.monotonic() < deadline and all(writer.poll() is None for writer in writers)
        time.sleep(0.001)
    go.touch()
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    return [record for file in verify_audit(path).files for record in read_audit(file)]


def verify_command(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mcp_server_connectwise", "audit", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def interleavings(records: list[dict]) -> int:
    return sum(1 for before, after in itertools.pairwise(records) if before["principal"] != after["principal"])


def test_two_processes_writing_500_lines_each_to_one_log_keep_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    records = write_from_two_processes(path, 500, DEFAULT_MAX_BYTES)
    run = verify_command(path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout == f"audit log {path}: intact, 1000 line(s) in 1 file(s)\n"
    for name in ("http:alice", "stdio:bob"):  # each process's lines are all there, in its own order
        assert [r["args"]["ticket_id"] for r in records if r["principal"] == name] == list(range(500))
    assert interleavings(records) > 10  # the two really wrote at the same time


def test_two_processes_rotating_one_log_keep_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    records = write_from_two_processes(path, 500, 20_000)
    result = verify_audit(path)
    assert result.intact and result.lines == 1000, result.findings
    rotated = rotated_files(path)
    assert [number for number, _ in rotated] == list(range(1, len(rotated) + 1)) and len(rotated) >= 10
    assert all(file.stat().st_size <= 20_000 for _, file in rotated)
    assert sorted((r["principal"], r["args"]["ticket_id"]) for r in records) == sorted(
        (name, number) for name in ("http:alice", "stdio:bob") for number in range(500)
    )
    assert interleavings(records) > 10
    run = verify_command(path)
    assert run.returncode == 0 and "intact, 1000 line(s)" in run.stdout, run.stdout + run.stderr
