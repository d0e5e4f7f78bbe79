"""The audit trail: one JSON line per tool call (success, failure or refusal), written before the tool answers.

Line format (version 1), one JSON object per line, keys in this order:

    {"v": 1, "ts": "2026-01-31T09:00:00.123Z", "tenant": "acme", "principal": "stdio:alice",
     "tool": "update_ticket", "args": {"ticket_id": 123, "status": "Closed", "summary": {"len": 12, "sha256": "..."}},
     "outcome": "ok" | "refused" | "error", "error": null | "one sentence",
     "duration_ms": 41.2, "requests": [{"method": "GET", "path": "/service/tickets/123", "status": 200, "ms": 12.5}],
     "written": [{"record": "ticket", "id": 123, "fields": ["status"]}]}

Readers must ignore keys they do not know: a later version may append keys such as `prev` (the SHA-256 of
the previous line's bytes, for a hash chain) without changing `v` for existing keys.

What never goes in: API keys, tokens, or free text (note bodies, summaries, search text) - free text is
recorded as its length and SHA-256 so that a line can be matched against a record without revealing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

FORMAT_VERSION = 1
Outcome = Literal["ok", "refused", "error"]


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

    def to_line(self) -> str:
        record = {
            "v": FORMAT_VERSION,
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
        return json.dumps(record, separators=(",", ":"), ensure_ascii=True, default=str) + "\n"


class AuditLog:
    """An append-only JSON-lines file. Each entry is one `write(2)` of a whole line on an O_APPEND descriptor, so
    concurrent writers (several server processes) never interleave within a line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._lock = threading.Lock()

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # 0600: the audit names tenants, tickets and people.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    def write(self, entry: AuditEntry, *, durable: bool) -> None:
        """Append `entry`; with `durable` (writes to ConnectWise) also fsync, so the line survives a crash."""
        data = entry.to_line().encode("ascii")
        with self._lock:
            fd = self._open()
            os.write(fd, data)
            if durable:
                os.fsync(fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_audit(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every entry in an audit file, oldest first (for tests and tooling)."""
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]
