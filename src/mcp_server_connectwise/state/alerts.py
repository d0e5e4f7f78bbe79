"""Per-alert-key state of one tenant: a lock, and what was seen since the last note.

The lock makes concurrent reports of one alert (several monitors, an RMM retrying) take turns, so that only
the first creates a ticket. The counters coalesce repeats into one note per interval, and the close/reopen
history tells a flapping alert. `AlertKeys` keeps them in this process (the embedded store): a restart forgets
them, so the next repeat starts a new count, and a flapping alert needs `flap_limit` more cycles to be
recognised again; the ticket itself is found in ConnectWise. `state.redis.alerts` keeps them in Redis for
several replicas, as `fields` and `from_fields` spell them.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

# Keys kept at most; the least recently used one is forgotten beyond it (a monitoring flood must not grow
# memory without bound).
MAX_KEYS = 50_000


@dataclass
class AlertKeyState:
    """What this process saw of one alert key."""

    last_note: datetime | None = None  # when the last note about repeats was written (or the ticket made)
    repeats: int = 0  # repeats since then
    first_repeat: datetime | None = None
    last_repeat: datetime | None = None
    cycles: deque[datetime] = field(default_factory=lambda: deque(maxlen=100))  # auto-close/reopen times
    flapping_noted: bool = False  # the ticket was told the alert is flapping

    def repeated(self, at: datetime) -> None:
        self.repeats += 1
        self.first_repeat = min(self.first_repeat or at, at)
        self.last_repeat = max(self.last_repeat or at, at)

    def noted(self, at: datetime) -> None:
        self.last_note, self.repeats, self.first_repeat, self.last_repeat = at, 0, None, None

    def fields(self) -> dict[str, str]:
        """The state as text fields (a Redis hash)."""
        moments = {"last_note": self.last_note, "first_repeat": self.first_repeat, "last_repeat": self.last_repeat}
        return {
            **{name: moment.isoformat() for name, moment in moments.items() if moment is not None},
            "repeats": str(self.repeats),
            "cycles": json.dumps([moment.isoformat() for moment in self.cycles]),
            "flapping_noted": "1" if self.flapping_noted else "0",
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> AlertKeyState:
        """The state `fields` spelled (an empty dict: a key never seen)."""
        state = cls()
        for name in ("last_note", "first_repeat", "last_repeat"):
            if fields.get(name):
                setattr(state, name, datetime.fromisoformat(fields[name]))
        state.repeats = int(fields.get("repeats", 0))
        state.cycles.extend(datetime.fromisoformat(moment) for moment in json.loads(fields.get("cycles", "[]")))
        state.flapping_noted = fields.get("flapping_noted") == "1"
        return state


class KeyTurns:
    """A lock per key, in this process, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: dict[str, int] = {}  # callers holding or waiting for each key's lock

    @asynccontextmanager
    async def taking(self, key: str) -> AsyncIterator[None]:
        """The key's lock, held for the block (waiters take turns in the order they came)."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._holders[key] = self._holders.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._holders[key] -= 1
            if not self._holders[key]:  # nobody waits: the lock can go
                del self._holders[key], self._locks[key]


class AlertKeys:
    """The state and the lock of each alert key of one tenant, in this process."""

    def __init__(self) -> None:
        self._states: dict[str, AlertKeyState] = {}
        self._turns = KeyTurns()

    @asynccontextmanager
    async def locked(self, key: str) -> AsyncIterator[AlertKeyState]:
        """The key's state, with its lock held for the block."""
        async with self._turns.taking(key):
            state = self._states.pop(key, None) or AlertKeyState()
            self._states[key] = state  # most recently used last
            while len(self._states) > MAX_KEYS:
                del self._states[next(iter(self._states))]
            yield state
