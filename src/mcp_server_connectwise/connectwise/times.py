"""How a moment is written to ConnectWise: UTC, whole seconds, `Z`."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_text(moment: datetime) -> str:
    """`moment` (with a time zone) as ConnectWise takes it, e.g. "2026-01-31T09:00:00Z".

    isoformat, not strftime: strftime("%Y") does not pad years before 1000 to four digits on every platform."""
    return moment.astimezone(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat() + "Z"
