"""The audit trail: one JSON line per tool call (success, failure or refusal), written before the tool answers,
and for each write to ConnectWise an intent line written before the write is sent.

Line format (version 2), one JSON object per line, keys in this order. A call line (an `AuditEntry`):

    {"v": 2, "prev": "<64 hex>", "ts": "2026-01-31T09:00:00.123Z", "tenant": "acme", "principal": "stdio:alice",
     "tool": "update_ticket", "args": {"ticket_id": 123, "status": "Closed", "summary": {"len": 12, "sha256": "..."}},
     "outcome": "ok" | "refused" | "error" | "unknown", "error": null | "one sentence",
     "duration_ms": 41.2, "requests": [{"method": "GET", "path": "/service/tickets/123", "status": 200, "ms": 12.5}],
     "written": [{"record": "ticket", "id": 123, "fields": ["status"]}], "intents": ["<16 hex>", ...]}

`intents` (only present when not empty) names the intent lines this call line settles. An intent line
(`AuditLog.intent`), written and fsynced before a write request is sent:

    {"v": 2, "prev": "...", "ts": "...", "kind": "intent", "id": "<16 hex>", "tenant": "acme", "principal": "local",
     "tool": "add_ticket_note", "args": {"ticket_id": 1001, "text": {"len": 22, "sha256": "..."}},
     "method": "POST", "path": "/service/tickets/1001/notes", "body": {"text": {"len": 22, "sha256": "..."}},
     "check": "ticket 1001's notes"}

and an acknowledgement line (`AuditLog.acknowledge`, the `audit ack` command), which settles intents whose
outcome a person has checked in ConnectWise after a crash:

    {"v": 2, "prev": "...", "ts": "...", "kind": "ack", "principal": "local", "intents": ["<16 hex>", ...]}

and a callback line (`AuditLog.callback`), for a ConnectWise callback the receiver refused (never its body):

    {"v": 2, "prev": "...", "ts": "...", "kind": "callback", "tenant": "acme", "status": 401,
     "error": "the signature does not match", "bytes": 2210, "message_id": "6dd8...", "type": "ticket", "id": 57961}

A line without `kind` is a call line. An intent no call or ack line names is unsettled (`unsettled_intents`):
the process died between announcing the write and recording its outcome, so whether it reached ConnectWise
is unknown; `verify_audit` reports each one until it is acknowledged.

Version 2 adds `prev` to version 1 (and the outcome "unknown": a write whose result could not be learnt).
`prev` is the SHA-256 (hex) of the previous line's exact bytes without its newline, so the lines form a hash
chain; the first line of a new log has `prev` = GENESIS (64 zeros). `prev` comes right after `v` so that even a
line torn by a crash mid-write still says which line it followed. Readers must ignore keys they do not know;
`kind`, `intents` and the intent and ack lines were added within version 2 (the chain covers every line the
same way, so logs written before them still verify).

Several processes may append to one log (an HTTP server and a stdio server on the default path): every append
takes an exclusive lock on `<name>.lock` next to the log (the `filelock` library: flock on POSIX) and, under
it, re-reads the chain head (the live file's last line, or after a rotation the newest rotated file's) and
decides on rotation, so their lines form one chain. A lock held by a process that dies is released by the OS.

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
import secrets
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from pydantic_core import to_jsonable_python

if TYPE_CHECKING:
    from filelock import BaseFileLock

FORMAT_VERSION = 2
GENESIS = "0" * 64  # `prev` of the very first line
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# check_writable refuses below this much free space: a write tool must not run if its line may not fit.
MIN_FREE_BYTES = 1024 * 1024
# How long an append waits for another process's lock on the log before it fails (a holder keeps it for one line).
LOCK_TIMEOUT_SECONDS = 10.0
Outcome = Literal["ok", "refused", "error", "unknown"]


class AuditUnavailable(Exception):
    """The audit log cannot be written; the message is one sentence saying why, without a path or traceback."""


def fingerprint(text: str) -> dict[str, Any]:
    """Free text as it appears in the audit: its length and SHA-256, never the text."""
    return {"len": len(text), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def audit_arguments(arguments: Mapping[str, Any], free_text: Iterable[str]) -> dict[str, Any]:
    """Tool arguments for the audit: ids and names as given, free-text arguments fingerprinted (one that is not
    text, such as a list of records, as its JSON), unset ones left out."""
    hidden = set(free_text)
    recorded: dict[str, Any] = {}
    for name, value in arguments.items():
        if value is None:
            continue
        if name in hidden:
            recorded[name] = fingerprint(
                value
                if isinstance(value, str)
                else json.dumps(value, sort_keys=True, ensure_ascii=False, default=to_jsonable_python)
            )
        elif isinstance(value, datetime):
            recorded[name] = value.isoformat()
        else:
            recorded[name] = value
    return recorded


def _field_name(name: str) -> str:
    """A field's name for matching free-text names: `internal_notes`, `internalNotes` and `/internalNotes` agree."""
    return name.rsplit("/", 1)[-1].replace("_", "").lower()


def audit_body(body: Any, free_text: Iterable[str]) -> Any:
    """A request body for the audit: as it will be sent, but every string under a free-text field name (at any
    depth, and as the `value` of a JSON Patch operation whose `path` names one) fingerprinted. Names match
    ignoring case, underscores and a leading path, so a tool's `free_text` (`internal_notes`) also covers the
    body's `internalNotes`."""
    hidden = {_field_name(name) for name in free_text}

    def redact(value: Any, free: bool) -> Any:
        if isinstance(value, str):
            return fingerprint(value) if free else value
        if isinstance(value, Mapping):
            patched = isinstance(value.get("path"), str) and _field_name(value["path"]) in hidden
            return {
                key: redact(item, free or _field_name(str(key)) in hidden or (patched and key == "value"))
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [redact(item, free) for item in value]
        if isinstance(value, datetime):
            return value.isoformat()
        return value

    return redact(body, False)


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
    # The ids of the intent lines (`AuditLog.intent`) this call settles: the write announced before it was sent
    # and, for a retry after a crash, the interrupted one it recognised (`unsettled_intents`).
    intents: list[str] = field(default_factory=list)
    # The ConnectWise member whose impersonation keys the call's writes were sent with (the principal's `member`);
    # None: the tenant's API member.
    member: str | None = None

    def to_line(self, prev: str) -> bytes:
        """The line's bytes without its newline; `prev` is the hash of the line before it."""
        record: dict[str, Any] = {
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
        if self.intents:  # left out otherwise: a call line without intents is byte for byte what it always was
            record["intents"] = list(self.intents)
        if self.member is not None:  # likewise
            record["member"] = self.member
        return _encode(record)


def _encode(record: Mapping[str, Any]) -> bytes:
    # ensure_ascii keeps one record on one line whatever the names contain.
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True, default=str).encode("ascii")


def _singular(plural: str) -> str:
    if plural.endswith("ies"):
        return plural[:-3] + "y"
    if plural.endswith(("sses", "uses", "xes")):
        return plural[:-2]
    return plural.removesuffix("s")


def default_check(method: str, path: str) -> str:
    """What to look at in ConnectWise to learn whether `method path` took effect, from the path alone:
    `/service/tickets/1001/notes` gives "ticket 1001's notes", `/service/tickets/1001` "ticket 1001",
    `/time/entries` "time entries"; anything else the request itself."""
    parts = [part for part in path.split("?", 1)[0].split("/") if part]
    if len(parts) >= 3 and parts[2].isdigit():
        record = f"{_singular(parts[1])} {parts[2]}"
        return f"{record}'s {' '.join(parts[3:])}" if len(parts) > 3 else record
    if len(parts) == 2 and method.upper() == "POST":
        return f"{parts[0]} {parts[1]}"
    return f"the result of {method.upper()} {'/' + '/'.join(parts)}"


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


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file every writer of the log at `path` takes for each append: `<name>.lock` next to it."""
    path = Path(path)
    return path.with_name(f"{path.name}.lock")


def _same_file(fd: int, path: Path) -> bool:
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    return os.path.samestat(os.fstat(fd), current)


class AuditLog:
    """An append-only, hash-chained JSON-lines file, rotated by size (see the module docstring).

    Several processes may write it, each with its own AuditLog. Every append holds this object's thread lock
    (asyncio tasks and threads of one process) and the log's cross-process file lock, and under both re-reads
    the chain head from the file, decides on rotation and appends the whole line, so lines never interleave and
    the chain stays linear however many writers there are. The cost is a lock and a read of the file's tail per
    line (a few kilobytes, not the whole log). An append that cannot get the file lock within
    `lock_timeout` seconds fails with AuditUnavailable, like any other failed write.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.lock_timeout = lock_timeout
        self._fd: int | None = None
        self._size = 0  # bytes in the live file, every one of them in whole lines (valid under the file lock)
        self._prev = GENESIS  # hash of the last line (valid under the file lock)
        self._failure: str | None = None  # why the last write failed, until a write succeeds
        self._lock = threading.Lock()
        self._file_lock: BaseFileLock | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # 0600: the audit names tenants, tickets and people. Readable too: the tail continues the chain.
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    def _locked(self) -> BaseFileLock:
        if self._file_lock is None:
            # Imported here: the CLI and the server's start-up import this module, and only writers need it.
            from filelock import FileLock

            # Polled briefly: another writer holds the lock for one line, and every call waits on its line.
            self._file_lock = FileLock(lock_path(self.path), timeout=self.lock_timeout, mode=0o600, poll_interval=0.001)
        return self._file_lock

    def _head(self) -> int:
        """Under the file lock: the live file's descriptor, with the chain state read from the file as it is now
        (another process may have appended, or rotated the file this descriptor still points at)."""
        fd = self._open()
        if not _same_file(fd, self.path):
            os.close(fd)
            self._fd = None
            fd = self._open()
        self._size, self._prev = self._chain_end(fd)
        return fd

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

    def _fail(self, reason: str) -> AuditUnavailable:
        """Forget the open file (the next call reopens it and rereads its tail) and say why writing failed."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._failure = reason
        return AuditUnavailable(reason)

    def _append(self, line_for: Callable[[str], bytes], *, durable: bool) -> None:
        """Append the line `line_for(prev)` builds; raise AuditUnavailable if it could not be written."""
        from filelock import Timeout

        with self._lock:
            try:
                self._open()  # creates the directory the lock file goes in
                with self._locked():
                    fd = self._head()
                    line = line_for(self._prev)
                    if self._size and self._size + len(line) + 1 > self.max_bytes:
                        fd = self._rotate()
                    try:
                        _write_all(fd, line + b"\n")
                    except OSError:
                        # E.g. the disk filled mid-line: leave no torn line behind. Safe under the file lock:
                        # no other writer can have appended after this line's start.
                        os.ftruncate(fd, self._size)
                        raise
                    self._size += len(line) + 1
                    self._prev = line_hash(line)
                    if durable:
                        os.fsync(fd)
            except Timeout:
                raise self._fail(
                    f"The audit log cannot be written: another process has held its lock for over "
                    f"{self.lock_timeout:g} seconds."
                ) from None
            except OSError as exc:
                raise self._fail(_unavailable(exc)) from None
            self._failure = None

    def write(self, entry: AuditEntry, *, durable: bool) -> None:
        """Append `entry`; with `durable` (writes to ConnectWise) also fsync, so the line survives a crash.

        Raises AuditUnavailable if the line could not be written; a partly written line is removed again."""
        self._append(entry.to_line, durable=durable)

    def intent(
        self,
        *,
        tenant: str,
        principal: str,
        tool: str,
        arguments: Mapping[str, Any],
        method: str,
        path: str,
        body: Any = None,
        free_text: Iterable[str] = (),
        check: str | None = None,
        member: str | None = None,
    ) -> str:
        """Announce a write before it is sent: append and fsync an intent line, and return its id.

        Call it right before sending the request `method path` with `body` (None: no body) to ConnectWise for a
        call of `tool` in `tenant` by `principal`, then name the id in the call's `AuditEntry(intents=[...])`.
        If this raises AuditUnavailable, send nothing: the write could not be audited. `arguments` are the
        tool's validated arguments (recorded like an AuditEntry's, through `audit_arguments`, so a retry can
        be matched against `Intent.args`); `free_text` names the free-text fields of the arguments and of the
        body (matched as `audit_body` says), which are recorded as length and hash only. `path` is recorded
        without its query string. `check` says what a person should look at in ConnectWise if the process dies
        before the outcome is recorded, as a noun phrase without free text ("ticket 1001's notes"; default:
        `default_check(method, path)`). `member`: the ConnectWise member the write is sent as, when not the
        tenant's API member."""
        hidden = frozenset(free_text)
        intent_id = secrets.token_hex(8)
        path = path.split("?", 1)[0]

        def line_for(prev: str) -> bytes:
            record = {
                "v": FORMAT_VERSION,
                "prev": prev,
                "ts": utc_timestamp(),
                "kind": "intent",
                "id": intent_id,
                "tenant": tenant,
                "principal": principal,
                "tool": tool,
                "args": audit_arguments(arguments, hidden),
                "method": method.upper(),
                "path": path,
                "body": audit_body(body, hidden),
                "check": check or default_check(method, path),
            }
            if member is not None:  # left out otherwise, as on the call line
                record["member"] = member
            return _encode(record)

        self._append(line_for, durable=True)
        return intent_id

    def acknowledge(self, intent_ids: Sequence[str], *, principal: str = "local") -> None:
        """Append and fsync an acknowledgement line settling `intent_ids`: unsettled intents whose outcome
        `principal` has checked in ConnectWise (what `audit ack` writes). Raises AuditUnavailable like `write`."""
        ids = list(intent_ids)

        def line_for(prev: str) -> bytes:
            return _encode(
                {
                    "v": FORMAT_VERSION,
                    "prev": prev,
                    "ts": utc_timestamp(),
                    "kind": "ack",
                    "principal": principal,
                    "intents": ids,
                }
            )

        self._append(line_for, durable=True)

    def callback(
        self, *, tenant: str, status: int, error: str, size: int, delivery: Mapping[str, Any], left_out: int = 0
    ) -> None:
        """Append a callback line: a delivery to the receiver of `tenant` (as the URL named it) answered `status`
        for `error` (a sentence without the body or any key). `delivery` holds what is known of it: its
        MessageId, Type and ID, no more; `left_out` counts the refusals before it that were not audited (the
        receiver bounds how many it audits). Not fsynced: it records no write to ConnectWise."""

        def line_for(prev: str) -> bytes:
            return _encode(
                {
                    "v": FORMAT_VERSION,
                    "prev": prev,
                    "ts": utc_timestamp(),
                    "kind": "callback",
                    "tenant": tenant,
                    "status": status,
                    "error": error,
                    "bytes": size,
                    **{key: delivery[key] for key in ("message_id", "type", "id") if delivery.get(key) is not None},
                    **({"left_out": left_out} if left_out else {}),
                }
            )

        self._append(line_for, durable=False)

    def check_writable(self) -> None:
        """Raise AuditUnavailable if a line cannot be written now: the directory or the file cannot be created or
        opened for writing, the disk is (nearly) full, or the last write failed and none has succeeded since."""
        with self._lock:
            if self._failure is not None:
                raise AuditUnavailable(self._failure)
            from filelock import Timeout

            try:
                space = os.fstatvfs(self._open())
                with self._locked():  # the lock file can be created and no other process is stuck holding it
                    pass
            except Timeout:
                raise AuditUnavailable(
                    f"The audit log cannot be written: another process has held its lock for over "
                    f"{self.lock_timeout:g} seconds."
                ) from None
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


def read_calls(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The call lines of an audit file (one per tool call), oldest first: its entries without the intent,
    acknowledgement and callback lines."""
    return [entry for entry in read_audit(path) if "kind" not in entry]


@dataclass(frozen=True)
class AuditFinding:
    file: Path
    line: int | None  # None: about the whole file
    reason: str


@dataclass(frozen=True)
class Intent:
    """An intent line (`AuditLog.intent`): a write announced before it was sent to ConnectWise."""

    id: str
    ts: str  # when it was announced, as `utc_timestamp` writes it (`time` parses it)
    tenant: str | None
    principal: str
    tool: str
    args: dict[str, Any]  # as `audit_arguments` recorded them: ids and names as given, free text as length + hash
    method: str
    path: str
    body: Any  # as `audit_body` recorded it
    check: str  # what to look at in ConnectWise, a noun phrase ("ticket 1001's notes")
    file: Path  # where the line was when the log was read
    line: int

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.ts)


@dataclass
class AuditVerification:
    files: list[Path]  # the files of the chain that exist, oldest first
    lines: int = 0  # lines checked
    findings: list[AuditFinding] = field(default_factory=list)
    # Intents no call or ack line settles, in every file present (even past a break in the chain), oldest first.
    unsettled: list[Intent] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """The hash chain is whole (unsettled intents do not break it)."""
        return not self.findings

    @property
    def passed(self) -> bool:
        """Intact, and no write is left whose outcome is unknown: what `audit verify` exits 0 for."""
        return self.intact and not self.unsettled


@dataclass(frozen=True)
class _Line:
    file: Path
    number: int
    data: bytes  # without the newline
    terminated: bool

    def where(self) -> str:
        return f"{self.file.name} line {self.number}"


@dataclass
class _Snapshot:
    """The log's files as they were at one moment, open: what `lines` reads is what was there then, even while
    other processes append to the live file or rotate it."""

    rotated: list[tuple[int, Path]]  # the rotated files that were there, oldest first
    live: Path | None  # None: there was no live file
    opened: dict[Path, tuple[BinaryIO, int]]  # each file, open, and its size then

    @property
    def files(self) -> list[Path]:
        return [file for _, file in self.rotated] + ([self.live] if self.live else [])

    def lines(self, files: Iterable[Path]) -> Generator[_Line]:
        for file in files:
            handle, remaining = self.opened[file]
            handle.seek(0)
            number = 0
            while remaining > 0:
                raw = handle.readline(remaining)
                if not raw:
                    break
                remaining -= len(raw)
                number += 1
                terminated = raw.endswith(b"\n")
                yield _Line(file, number, raw[:-1] if terminated else raw, terminated)


@contextlib.contextmanager
def _snapshot(live: Path) -> Iterator[_Snapshot]:
    """Open the log's files under its lock (when a writer has made one), so that no rotation or line is seen
    half done, and note their sizes; then release the lock, and read without holding writers up."""
    with contextlib.ExitStack() as handles:
        opened: dict[Path, tuple[BinaryIO, int]] = {}

        def keep(file: Path) -> bool:
            try:
                handle = handles.enter_context(open(file, "rb"))
            except FileNotFoundError:  # removed since it was listed (only possible without the lock)
                return False
            opened[file] = (handle, os.fstat(handle.fileno()).st_size)
            return True

        with contextlib.ExitStack() as locked:
            if lock_path(live).exists():  # not created by a reader: verifying a copied log leaves it as it was
                from filelock import FileLock

                # A lock that cannot be had (a read-only copy, a writer stuck) leaves the read unlocked.
                with contextlib.suppress(OSError):
                    locked.enter_context(FileLock(lock_path(live), timeout=LOCK_TIMEOUT_SECONDS, poll_interval=0.001))
            rotated = [(number, file) for number, file in rotated_files(live) if keep(file)]
            present = live.exists() and keep(live)
        yield _Snapshot(rotated, live if present else None, opened)


def _intent_of(record: Mapping[str, Any], line: _Line) -> Intent | None:
    intent_id = record.get("id")
    if not isinstance(intent_id, str):
        return None
    text: dict[str, str] = {}
    for key in ("ts", "principal", "tool", "method", "path", "check"):
        value = record.get(key)
        text[key] = value if isinstance(value, str) else "?"
    tenant = record.get("tenant")
    args = record.get("args")
    return Intent(
        id=intent_id,
        ts=text["ts"],
        tenant=tenant if isinstance(tenant, str) else None,
        principal=text["principal"],
        tool=text["tool"],
        args=args if isinstance(args, dict) else {},
        method=text["method"],
        path=text["path"],
        body=record.get("body"),
        check=text["check"],
        file=line.file,
        line=line.number,
    )


def _unsettled(lines: Iterable[_Line]) -> list[Intent]:
    intents: dict[str, Intent] = {}
    settled: set[str] = set()
    for line in lines:
        # Most lines are neither: skip parsing them. (Inside a JSON string these bytes would be escaped.)
        if b'"kind":"intent"' not in line.data and b'"intents":' not in line.data:
            continue
        try:
            record = json.loads(line.data)
        except ValueError:
            continue  # a torn line: an intent torn in writing was never confirmed, so its write was not sent
        if not isinstance(record, dict):
            continue
        if record.get("kind") == "intent":
            if (intent := _intent_of(record, line)) is not None:
                intents.setdefault(intent.id, intent)
        elif isinstance(record.get("intents"), list):  # a call line or an ack line
            settled.update(name for name in record["intents"] if isinstance(name, str))
    return [intent for intent_id, intent in intents.items() if intent_id not in settled]


def unsettled_intents(path: str | os.PathLike[str]) -> list[Intent]:
    """The intents in the log at `path` (its rotated files and the live file) that no call line
    (`AuditEntry.intents`) or ack line settles, oldest first: writes announced whose outcome was never recorded,
    because the process died in between (or, for another process's, is still sending them).

    A server can call this at start-up to recognise a retry of an interrupted write: compare an intent's
    `tool`, `tenant` and `args` with `audit_arguments` of the new call's arguments, check ConnectWise, and name
    the old intent's id in the new call's `AuditEntry.intents` too. Reads the whole log (a few lines parsed per
    write); cache the answer rather than calling it per request. A missing log has none."""
    with _snapshot(Path(path)) as snapshot:
        return _unsettled(snapshot.lines(snapshot.files))


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
    live file cannot be detected by the chain itself. The result also lists the unsettled intents
    (`unsettled_intents`); `passed` is False while there are any. Files are opened under the log's lock and read
    as they were then, so writers in other processes cause no false alarm."""
    live = Path(path)
    with _snapshot(live) as snapshot:
        return _verify(snapshot, live, window)


def _verify(snapshot: _Snapshot, live: Path, window: int) -> AuditVerification:
    rotated = snapshot.rotated
    gap = next((expected for expected, (number, _) in enumerate(rotated, 1) if number != expected), None)
    chained = [file for number, file in rotated if gap is None or number < gap]
    if gap is None and snapshot.live is not None:
        chained.append(snapshot.live)
    result = AuditVerification(chained, unsettled=_unsettled(snapshot.lines(snapshot.files)))

    def report(line: _Line, reason: str) -> None:
        result.findings.append(AuditFinding(line.file, line.number, reason))

    expected, previous = GENESIS, None
    recent: deque[tuple[str, _Line]] = deque(maxlen=window)
    with contextlib.closing(snapshot.lines(chained)) as lines:
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
