"""The audit trail: one JSON line per tool call (success, failure or refusal), written before the tool answers.

Line format (version 2), one JSON object per line, keys in this order:

    {"v": 2, "prev": "<64 hex>", "ts": "2026-01-31T09:00:00.123Z", "tenant": "acme", "principal": "stdio:alice",
     "tool": "update_ticket", "args": {"ticket_id": 123, "status": "Closed", "summary": {"len": 12, "sha256": "..."}},
     "outcome": "ok" | "refused" | "error" | "unknown", "error": null | "one sentence",
     "duration_ms": 41.2, "requests": [{"method": "GET", "path": "/service/tickets/123", "status": 200, "ms": 12.5}],
     "written": [{"record": "ticket", "id": 123, "fields": ["status"]}]}

Version 2 adds `prev` to version 1 (and the outcome "unknown": a write whose result could not be learnt).
`prev` is the SHA-256 (hex) of the previous line's exact bytes without its newline, so the lines form a hash
chain; the first line of a new log has `prev` = GENESIS (64 zeros). `prev` comes right after `v` so that even a
line torn by a crash mid-write still says which line it followed. Readers must ignore keys they do not know.

Rotation: when a line would take the live file past `max_bytes`, the file is renamed to `<name>.N`, N one more
than the highest existing (numbers never shift: `.1` is the oldest), and a new live file is started whose first
line's `prev` is the hash of the rotated file's last line, so one chain runs through `.1`, `.2`, ... and the live
file. `verify_audit` walks them in that order. Deleting old rotated files therefore breaks verification.

Durability: lines are appended whole (a failed write is cut back off) and fsynced for write tools, so a crash
loses at most a torn last line; the next writer ends it with a newline and chains across it, and verify reports
it. Limits: the chain proves order and completeness up to the last line present, not that the newest lines
were not cut off, and someone able to rewrite the whole log can recompute the chain (no key or outside anchor).

What never goes in: API keys, tokens, or free text (note bodies, summaries, search text) - free text is
recorded as its length and SHA-256 so that a line can be matched against a record without revealing it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import re
import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

FORMAT_VERSION = 2
GENESIS = "0" * 64  # `prev` of the very first line
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# check_writable refuses below this much free space: a write tool must not run if its line may not fit.
MIN_FREE_BYTES = 1024 * 1024
Outcome = Literal["ok", "refused", "error", "unknown"]


class AuditUnavailable(Exception):
    """The audit log cannot be written; the message is one sentence saying why, without a path or traceback."""


def fingerprint(text: str) -> dict[str, Any]:
    """Free text as it appears in the audit: its length and SHA-256, never the text."""
    return {"len": len(text), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def audit_arguments(arguments: Mapping[str, Any], free_text: Iterable[str]) -> dict[str, Any]:
    """Tool arguments for the audit: ids and names as given, free-text arguments fingerprinted, unset ones left out."""
    hidden = set(free_text)
    recorded: dict[str, Any] = {}
    for name, value in arguments.items():
        if value is None:
            continue
        if name in hidden and isinstance(value, str):
            recorded[name] = fingerprint(value)
        elif isinstance(value, datetime):
            recorded[name] = value.isoformat()
        else:
            recorded[name] = value
    return recorded


def utc_timestamp(moment: datetime | None = None) -> str:
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class AuditEntry:
    tenant: str | None
    principal: str
    tool: str
    args: dict[str, Any]
    outcome: Outcome
    error: str | None
    duration_ms: float
    requests: list[dict[str, Any]] = field(default_factory=list)
    written: list[dict[str, Any]] = field(default_factory=list)
    ts: str = field(default_factory=utc_timestamp)

    def to_line(self, prev: str) -> bytes:
        """The line's bytes without its newline; `prev` is the hash of the line before it."""
        record = {
            "v": FORMAT_VERSION,
            "prev": prev,
            "ts": self.ts,
            "tenant": self.tenant,
            "principal": self.principal,
            "tool": self.tool,
            "args": self.args,
            "outcome": self.outcome,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 1),
            "requests": self.requests,
            "written": self.written,
        }
        # ensure_ascii keeps one record on one line whatever the names contain.
        return json.dumps(record, separators=(",", ":"), ensure_ascii=True, default=str).encode("ascii")


def line_hash(line: bytes) -> str:
    """What the next line's `prev` holds: the SHA-256 of a line's bytes, newline excluded."""
    return hashlib.sha256(line).hexdigest()


def rotated_files(path: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """The rotated files of the log at `path` (`<name>.N`), oldest first, with their numbers."""
    path = Path(path)
    pattern = re.compile(re.escape(path.name) + r"\.([1-9][0-9]*)")
    try:
        names = os.listdir(path.parent)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted((int(match.group(1)), path.parent / name) for name in names if (match := pattern.fullmatch(name)))


_TAIL_BLOCK = 8192


def _last_line(fd: int) -> tuple[bytes, bool] | None:
    """The file's last line without its newline, and whether that newline is there (False: torn by a crash).
    Read backwards from the end in blocks, so a large log costs a few small reads. None for an empty file."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    terminated = os.pread(fd, 1, size - 1) == b"\n"
    position = size - 1 if terminated else size
    blocks: list[bytes] = []
    while position > 0:
        start = max(0, position - _TAIL_BLOCK)
        block = os.pread(fd, position - start, start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            blocks.append(block[cut + 1 :])
            break
        blocks.append(block)
        position = start
    return b"".join(reversed(blocks)), terminated


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.EISDIR: "its path is a directory",
    errno.ENOTDIR: "a parent of its path is not a directory",
    # mkdir(exist_ok=True) raises EEXIST only when the existing entry is not a directory.
    errno.EEXIST: "a parent of its path is not a directory",
}


def _unavailable(exc: OSError) -> str:
    reason = _REASONS.get(exc.errno or 0) or (exc.strerror or type(exc).__name__).lower()
    return f"The audit log cannot be written: {reason}."


class AuditLog:
    """An append-only, hash-chained JSON-lines file, rotated by size (see the module docstring).

    One process writes it. A line is built and appended under one lock together with the chain state (the hash
    of the last line), so lines never interleave and the chain stays linear whether the callers are asyncio tasks
    or threads. Opening an existing log continues its chain from its last line (or the newest rotated file's).
    """

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._size = 0  # bytes in the live file, every one of them in whole lines
        self._prev = GENESIS  # hash of the last line
        self._failure: str | None = None  # why the last write failed, until a write succeeds
        self._lock = threading.Lock()

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # 0600: the audit names tenants, tickets and people. Readable too: the tail continues the chain.
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                self._size, self._prev = self._chain_end(fd)
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def _chain_end(self, fd: int) -> tuple[int, str]:
        """The live file's size and the hash the next line's `prev` must hold."""
        tail = _last_line(fd)
        if tail is not None:
            last, terminated = tail
            if not terminated:
                # A crash tore the last line. End it, so the next line starts on its own line, and chain from
                # its bytes: verify reports it as torn and checks the chain across it.
                _write_all(fd, b"\n")
            return os.fstat(fd).st_size, line_hash(last)
        # A new or empty live file: after a rotation (possibly interrupted by a crash), or a brand new log.
        for _, rotated in reversed(rotated_files(self.path)):
            rotated_fd = os.open(rotated, os.O_RDONLY)
            try:
                rotated_tail = _last_line(rotated_fd)
            finally:
                os.close(rotated_fd)
            if rotated_tail is not None:
                return 0, line_hash(rotated_tail[0])
        return 0, GENESIS

    def _rotate(self) -> int:
        """Rename the live file to the next `<name>.N` and start a new one; the chain state carries over."""
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        rotated = rotated_files(self.path)
        number = rotated[-1][0] + 1 if rotated else 1
        os.rename(self.path, self.path.with_name(f"{self.path.name}.{number}"))
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = 0
        _fsync_directory(self.path.parent)  # the rename and the new file survive a crash too
        return self._fd

    def _fail(self, exc: OSError) -> AuditUnavailable:
        """Forget the open file (the next call reopens it and rereads its tail) and say why writing failed."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._failure = _unavailable(exc)
        return AuditUnavailable(self._failure)

    def write(self, entry: AuditEntry, *, durable: bool) -> None:
        """Append `entry`; with `durable` (writes to ConnectWise) also fsync, so the line survives a crash.

        Raises AuditUnavailable if the line could not be written; a partly written line is removed again."""
        with self._lock:
            try:
                fd = self._open()
                line = entry.to_line(self._prev)
                if self._size and self._size + len(line) + 1 > self.max_bytes:
                    fd = self._rotate()
                try:
                    _write_all(fd, line + b"\n")
                except OSError:
                    os.ftruncate(fd, self._size)  # e.g. the disk filled mid-line: leave no torn line behind
                    raise
                self._size += len(line) + 1
                self._prev = line_hash(line)
                if durable:
                    os.fsync(fd)
            except OSError as exc:
                raise self._fail(exc) from None
            self._failure = None

    def check_writable(self) -> None:
        """Raise AuditUnavailable if a line cannot be written now: the directory or the file cannot be created or
        opened for writing, the disk is (nearly) full, or the last write failed and none has succeeded since."""
        with self._lock:
            if self._failure is not None:
                raise AuditUnavailable(self._failure)
            try:
                space = os.fstatvfs(self._open())
            except OSError as exc:
                raise AuditUnavailable(_unavailable(exc)) from None
            if space.f_bavail * space.f_frsize < MIN_FREE_BYTES:
                raise AuditUnavailable(_unavailable(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_audit(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every entry in an audit file, oldest first (for tests and tooling)."""
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


@dataclass(frozen=True)
class AuditFinding:
    file: Path
    line: int | None  # None: about the whole file
    reason: str


@dataclass
class AuditVerification:
    files: list[Path]  # the files of the chain that exist, oldest first
    lines: int = 0  # lines checked
    findings: list[AuditFinding] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class _Line:
    file: Path
    number: int
    data: bytes  # without the newline
    terminated: bool

    def where(self) -> str:
        return f"{self.file.name} line {self.number}"


def _lines(files: Iterable[Path]) -> Generator[_Line, None, None]:
    for file in files:
        with open(file, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                terminated = raw.endswith(b"\n")
                yield _Line(file, number, raw[:-1] if terminated else raw, terminated)


# The writer puts `prev` first, so a torn line keeps it unless it was torn within its first 80 bytes.
_TORN_PREV = re.compile(rb'\{"v":\d+,"prev":"([0-9a-f]{64})"')
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _prev_of(data: bytes) -> tuple[str | None, bool]:
    """The line's `prev` (None if it has no readable one) and whether the line is a whole JSON object."""
    try:
        record = json.loads(data)
    except ValueError:
        match = _TORN_PREV.match(data)
        return (match.group(1).decode("ascii") if match else None), False
    if not isinstance(record, dict):
        return None, False
    prev = record.get("prev")
    return (prev if isinstance(prev, str) and _HEX64.fullmatch(prev) else None), True


def _explain_break(
    line: _Line,
    prev: str,
    previous: _Line | None,
    recent: Iterable[tuple[str, _Line]],
    following: Iterator[_Line],
    window: int,
) -> str:
    for later in itertools.islice(following, window):
        if line_hash(later.data) == prev:
            return f"out of order: it belongs after {later.where()}"
    if previous is None:
        return (
            "the chain does not start here (prev is not the genesis value): earlier lines or rotated files are missing"
        )
    for digest, earlier in recent:
        if digest == prev:
            return f"out of order: it follows {earlier.where()}, not {previous.where()}"
    if previous.file != line.file:
        return (
            f"does not follow the last line of {previous.file.name} (prev mismatch): lines or a rotated file "
            "are missing, or that line was edited"
        )
    return f"does not follow {previous.where()} (prev mismatch): that line was edited, or lines after it were deleted"


def verify_audit(path: str | os.PathLike[str], *, window: int = 1000) -> AuditVerification:
    """Check the hash chain through the rotated files of the log at `path` and the live file.

    Stops at the first broken link (what follows it cannot be placed in the chain); a torn line the chain
    continues across (a crash, then the writer carried on) is reported and passed. `window` bounds how many lines
    before and after a break are searched to recognise reordered lines. Deleting lines from the very end of the
    live file cannot be detected by the chain itself."""
    live = Path(path)
    rotated = rotated_files(live)
    gap = next((expected for expected, (number, _) in enumerate(rotated, 1) if number != expected), None)
    chained = [file for number, file in rotated if gap is None or number < gap]
    if gap is None and live.exists():
        chained.append(live)
    result = AuditVerification(chained)

    def report(line: _Line, reason: str) -> None:
        result.findings.append(AuditFinding(line.file, line.number, reason))

    expected, previous = GENESIS, None
    recent: deque[tuple[str, _Line]] = deque(maxlen=window)
    with contextlib.closing(_lines(chained)) as lines:
        for line in lines:
            result.lines += 1
            prev, whole = _prev_of(line.data)
            if not line.terminated:
                report(line, "torn: the last line is incomplete (no newline), as left by a crash mid-write")
            elif not whole:
                unchecked = "" if prev else "; its prev is unreadable, so its link to the line before is unchecked"
                report(
                    line,
                    f"torn: not a complete JSON line, as left by a crash mid-write; the chain continues "
                    f"across it{unchecked}",
                )
            if prev is None:
                if whole:
                    report(line, "no valid prev: not a hash-chained line (format v1, or the key was edited)")
                    return result
            elif prev != expected:
                report(line, _explain_break(line, prev, previous, reversed(recent), lines, window))
                return result
            digest = line_hash(line.data)
            recent.append((digest, line))
            expected, previous = digest, line
    if gap is not None:
        result.findings.append(
            AuditFinding(
                live.with_name(f"{live.name}.{gap}"),
                None,
                f"missing: the rotated files must run {live.name}.1, .2, ... without a gap",
            )
        )
    return result
