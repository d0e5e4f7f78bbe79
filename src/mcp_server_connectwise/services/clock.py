"""The time the services read, in one place: what "now" is for an SLA deadline, a time sheet's week, a
duplicate check's window, an alert's report. A test that needs it to stand still replaces `now` here."""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> datetime:
    """This moment, in UTC."""
    return datetime.now(timezone.utc)
