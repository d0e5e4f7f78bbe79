"""Creating a record exactly once when ConnectWise's answer to the POST is lost.

A POST whose answer never came (`AmbiguousWriteError`: timeout, reset, a 5xx without ConnectWise's body) or
came as a 5xx may or may not have created the record, and the client never re-sends it blindly.
`create_once` finds out by looking:

1. list the newest records that could be ours and match them against what was sent; found: it was created;
2. not found: that attempt demonstrably did not land, so send once more, and if that answer is lost too, look
   again; still not there: nothing was written;
3. the look itself fails: the outcome is unknown, and the error says so (`OutcomeUnknown`).

No marker is added to the record: a note's text is read by customers, and hidden characters are stripped from
it on purpose. So a match is by content within a time window, and records this process already reported as
created by an earlier call are never matched again, so that two calls writing the same words each get (and
report) their own record.

Cost: nothing on the warm path. A lost answer costs one list request per look (at most two looks, two sends)
and `SETTLE_SECONDS` of waiting before each look.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from weakref import WeakKeyDictionary

from mcp_server_connectwise.connectwise import AmbiguousWriteError, ConnectWiseClient, ConnectWiseError, ServerError
from mcp_server_connectwise.services.errors import Failed, OutcomeUnknown
from mcp_server_connectwise.services.tenancy import TenantSession

logger = logging.getLogger(__name__)

# A POST that timed out may still be running in ConnectWise; looking at once could miss it and re-send it.
SETTLE_SECONDS = 2.0
# Our clock and ConnectWise's disagree by a little; a record entered before (send time - skew) is not ours.
CLOCK_SKEW = timedelta(minutes=5)
# How many created ids per kind a client remembers, to keep an earlier call's record from being claimed again.
_REMEMBERED_IDS = 4096

_reported: WeakKeyDictionary[ConnectWiseClient, dict[str, dict[int, None]]] = WeakKeyDictionary()

# What leaves a POST's outcome open: no (reliable) answer, or ConnectWise failing part-way.
_LOST_ANSWER = (AmbiguousWriteError, ServerError)


@dataclass(frozen=True)
class PlannedWrite:
    """A record to create, and how to recognise it in ConnectWise if the answer to its POST is lost."""

    kind: str  # "note", "time entry": the words of every sentence, and the key of the remembered ids
    path: str
    body: dict
    ticket_id: int
    check: str  # what a person should look at when the outcome is unknown, e.g. "the ticket's notes"
    # The records equal to `body` entered at or after the given moment, newest first.
    find: Callable[[datetime], Awaitable[list[dict]]]


async def create_once(session: TenantSession, write: PlannedWrite) -> dict:
    """POST `write.body` and return the created record: sent at most twice, and never created twice."""
    since = datetime.now(timezone.utc) - CLOCK_SKEW
    created = await _send_or_find(session, write, since)
    _remember(session.client, write.kind, created.get("id"))
    return created


async def _send_or_find(session: TenantSession, write: PlannedWrite, since: datetime) -> dict:
    lost: ConnectWiseError | None = None
    for _ in range(2):
        try:
            return await session.client.post(write.path, write.body)
        except _LOST_ANSWER as exc:
            lost = exc
        found = await _look(session, write, since, lost)
        if found is not None:
            logger.warning("the answer to POST %s was lost (%s); found the %s it created: id %s",
                           write.path, _why(lost), write.kind, found.get("id"))
            return found
        logger.warning("the answer to POST %s was lost (%s) and no %s was created", write.path, _why(lost), write.kind)
    raise Failed(
        f"The {write.kind} was not saved on ticket {write.ticket_id} (tenant {session.name}): ConnectWise gave no clear "
        f"answer to either attempt ({_why(lost)} the last time) and the {write.kind} is not there, so nothing was "
        "written; try again later."
    )


async def _look(session: TenantSession, write: PlannedWrite, since: datetime, lost: ConnectWiseError) -> dict | None:
    await asyncio.sleep(SETTLE_SECONDS)
    try:
        candidates = await write.find(since)
    except ConnectWiseError as failure:
        raise OutcomeUnknown(
            f"It is unknown whether the {write.kind} was saved on ticket {write.ticket_id} (tenant {session.name}): "
            f"ConnectWise gave no clear answer to the write ({_why(lost)}) and looking for it failed too "
            f"({_why(failure)}). "
            f"It may or may not have been written; check {write.check} before sending it again."
        ) from None
    reported = _reported.get(session.client, {}).get(write.kind, {})
    return next((record for record in candidates if record.get("id") not in reported), None)


def _remember(client: ConnectWiseClient, kind: str, record_id: object) -> None:
    if not isinstance(record_id, int):
        return
    ids = _reported.setdefault(client, {}).setdefault(kind, {})
    ids[record_id] = None
    if len(ids) > _REMEMBERED_IDS:
        del ids[next(iter(ids))]  # dicts keep insertion order: this is the oldest


def _why(exc: ConnectWiseError) -> str:
    return f"HTTP {exc.status}" if exc.status is not None else "the connection broke or timed out"


def parse_moment(value: object) -> datetime | None:
    """A ConnectWise timestamp ("2026-01-31T09:00:00Z") in UTC, or None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(timezone.utc) if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def same_text(stored: object, sent: str | None) -> bool:
    """Whether ConnectWise's copy of a text is the text we sent (it may have turned line ends into CRLF)."""
    def normal(text: object) -> str:
        return text.replace("\r\n", "\n").strip() if isinstance(text, str) else ""

    return normal(stored) == normal(sent)


def entered_since(record: dict, field: str, since: datetime) -> bool:
    """False only when the record's entry time is known and before `since`."""
    entered = parse_moment(record.get(field))
    return entered is None or entered >= since
