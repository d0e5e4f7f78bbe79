"""Creating a record exactly once when ConnectWise's answer to the POST is lost, and knowing whether a PATCH
was applied when its answer does not show it.

A POST that failed may still have created the record, and the client never re-sends it blindly. How
`create_once` finds out depends on what is known about the failed attempt:

- definite (a 5xx with ConnectWise's error body): look once, `SETTLE_SECONDS` later;
- ambiguous (`AmbiguousWriteError`: sent, no answer): ConnectWise may still be committing it, so look after
  `SETTLE_SECONDS` and, if it is not there, once more `RECHECK_SECONDS` later;
- never sent (`TransportError`; the client already retried it): there is nothing to look for.

Found: it was created. Not found: send once more (and if that fails too, find out again the same way); still
not there: `Failed`, saying how often ConnectWise was looked at. A look that itself fails leaves the outcome
unknown, and the error says so (`OutcomeUnknown`).

No marker is added to the record: a note's text is read by customers, and hidden characters are stripped from
it on purpose. So a match is by content within a time window, and records the tenant's session already
reported as created by an earlier call are never matched again, so that two calls writing the same words each
get (and report) their own record.

Cost: nothing on the warm path. A failed attempt costs one list request per look (at most two looks per
attempt, two sends) and the waits before them.

A PATCH (`patch_checked`) only replaces values, so it needs no such search: the record is read back when the
answer does not hold it (lost, not JSON, no record), after `SETTLE_SECONDS` when it was lost, and compared with
what the PATCH sets. One GET at most, and only then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeGuard, TypeVar

from pydantic import ValidationError as PydanticValidationError

from mcp_server_connectwise.connectwise import (
    AmbiguousWriteError,
    ConnectWiseError,
    NotJsonError,
    ServerError,
    TransportError,
)
from mcp_server_connectwise.connectwise.models import read_moment
from mcp_server_connectwise.connectwise.scope import current as current_scope
from mcp_server_connectwise.services import clock
from mcp_server_connectwise.services.errors import Failed, Look, OutcomeUnknown
from mcp_server_connectwise.services.tenancy import TenantSession

logger = logging.getLogger(__name__)

M = TypeVar("M")

# A failed POST may still be running in ConnectWise; looking at once could miss it and re-send it.
SETTLE_SECONDS = 2.0
# What a look at the records (one or two list requests) needs of the call's deadline.
LOOK_SECONDS = 3.0
# A POST sent without an answer may be committing for longer: not found at the first look, it is looked for
# once more this much later before it is sent again.
RECHECK_SECONDS = 10.0
# Our clock and ConnectWise's disagree by a little; a record entered before (send time - skew) is not ours.
CLOCK_SKEW = timedelta(minutes=5)
# How many created ids per kind a session remembers, to keep an earlier call's record from being claimed again.
_REMEMBERED_IDS = 4096


@dataclass(frozen=True)
class PlannedWrite:
    """A record to create, and how to recognise it in ConnectWise if the answer to its POST is lost."""

    kind: str  # "note", "time entry", "ticket": the words of every sentence, and the key of the remembered ids
    path: str
    body: dict
    place: str  # where the record goes, as the sentences say it: "on ticket 1003", "for company ACME"
    check: str  # what a person should look at when the outcome is unknown, e.g. "the ticket's notes"
    # The records equal to `body` entered at or after the given moment, newest first.
    find: Callable[[datetime], Awaitable[list[dict]]]
    look: Look = Look.READ_TICKET  # the check a sentence about an unknown outcome asks for


@dataclass
class EarlierAttempt:
    """An identical earlier call whose outcome was never reported as done (unknown, timed out, cancelled,
    interrupted by a restart): what it may have created is looked for before anything is sent again."""

    started: datetime
    found: dict | None = None  # the record it had created, once found


_earlier_attempt: ContextVar[EarlierAttempt | None] = ContextVar("earlier_attempt", default=None)


@contextmanager
def repeating(started: datetime) -> Iterator[EarlierAttempt]:
    """Writes inside this block repeat a call first made at `started` whose outcome is not known."""
    attempt = EarlierAttempt(started)
    token = _earlier_attempt.set(attempt)
    try:
        yield attempt
    finally:
        _earlier_attempt.reset(token)


def earlier_attempt() -> EarlierAttempt | None:
    """The identical earlier call this one repeats, if it repeats one (see `repeating`)."""
    return _earlier_attempt.get()


async def create_once(session: TenantSession, write: PlannedWrite) -> dict:
    """POST `write.body` and return the created record: sent at most twice, and never created twice. A repeat of
    a call whose outcome was not known looks for that call's record first, and returns it if it is there."""
    found = await recover_earlier(session, write)
    return found if found is not None else await send_once(session, write)


async def recover_earlier(session: TenantSession, write: PlannedWrite) -> dict | None:
    """The record an identical earlier call with an unknown outcome created, if this call repeats one and the
    record is there; None otherwise (nothing is looked for when the call repeats none)."""
    earlier = earlier_attempt()
    if earlier is None:
        return None
    found = await _look(session, write, earlier.started - CLOCK_SKEW, "an earlier identical call got no answer")
    if found is not None:
        logger.warning("%s found from an earlier call whose outcome was unknown: id %s", write.kind, found["id"])
        earlier.found = found
        _remember(session, write.kind, found.get("id"))
    return found


async def send_once(session: TenantSession, write: PlannedWrite) -> dict:
    """POST `write.body` and return the created record, looking for it before any re-send (see the module)."""
    since = clock.now() - CLOCK_SKEW
    created = await _send_or_find(session, write, since)
    _remember(session, write.kind, created.get("id"))
    return created


async def settle(wait: float, out_of_time: Callable[[], OutcomeUnknown]) -> None:
    """Wait `wait` seconds before looking at what a write did, if the call's deadline leaves time for the wait
    and the look; `out_of_time()` is raised at once if it does not."""
    remaining = current_scope().remaining()
    if remaining is not None and wait + LOOK_SECONDS > remaining:
        raise out_of_time()
    await asyncio.sleep(wait)


def _no_time_to_look(session: TenantSession, write: PlannedWrite, why: str) -> OutcomeUnknown:
    return OutcomeUnknown(
        f"The {write.kind} may have been saved {write.place} (tenant {session.name}): the write failed "
        f"({why}) and this call had no time left to look for it. Check {write.check} before retrying; a retry of "
        "this same call looks for it first.",
        look=write.look,
    )


def _waits_before_looks(failure: ConnectWiseError) -> tuple[float, ...]:
    if isinstance(failure, AmbiguousWriteError):
        return (SETTLE_SECONDS, RECHECK_SECONDS)
    if isinstance(failure, ServerError):
        return (SETTLE_SECONDS,)
    return ()  # never sent


def _has_id(record: object) -> TypeGuard[dict]:
    return isinstance(record, dict) and isinstance(record.get("id"), int) and not isinstance(record.get("id"), bool)


async def _send_or_find(session: TenantSession, write: PlannedWrite, since: datetime) -> dict:
    failures: list[ConnectWiseError] = []
    looks = 0
    for _ in range(2):
        try:
            answer = await session.client.post(write.path, write.body)
        except (AmbiguousWriteError, ServerError, TransportError) as failure:
            failures.append(failure)
        except NotJsonError as failure:
            return await _find_created(
                session, write, since, f"ConnectWise answered HTTP {failure.status} with a body that is not JSON"
            )
        else:
            if _has_id(answer):
                return answer
            return await _find_created(
                session, write, since, "ConnectWise answered that it was created but without the record"
            )
        for wait in _waits_before_looks(failures[-1]):
            await settle(wait, lambda: _no_time_to_look(session, write, _why(failures[-1])))
            looks += 1
            found = await _look(session, write, since, _why(failures[-1]))
            if found is not None:
                logger.warning(
                    "POST %s failed (%s); found the %s it created: id %s",
                    write.path,
                    _why(failures[-1]),
                    write.kind,
                    found.get("id"),
                )
                return found
        logger.warning("POST %s failed (%s) and the %s is not there", write.path, _why(failures[-1]), write.kind)
    attempts = "; then ".join(_why(failure) for failure in failures)
    seen = (
        f"ConnectWise shows no such {write.kind} after looking {_times(looks)}"
        if looks
        else "neither request reached ConnectWise"
    )
    raise Failed(
        f"The {write.kind} was not saved {write.place} (tenant {session.name}): both attempts failed "
        f"({attempts}) and {seen}; nothing was written. Try again later."
    )


async def _find_created(session: TenantSession, write: PlannedWrite, since: datetime, answered: str) -> dict:
    """The record a POST answered 2xx for without a readable record: it was created, so it is looked for and
    never sent again."""
    await settle(SETTLE_SECONDS, lambda: _no_time_to_look(session, write, answered))
    found = await _look(session, write, since, answered)
    if found is not None:
        logger.warning("POST %s: %s; found the %s: id %s", write.path, answered, write.kind, found.get("id"))
        return found
    raise OutcomeUnknown(
        f"The {write.kind} was probably saved {write.place} (tenant {session.name}), but {answered} "
        f"and it could not be found; check {write.check} before sending it again.",
        look=write.look,
    )


async def _look(session: TenantSession, write: PlannedWrite, since: datetime, why: str) -> dict | None:
    try:
        candidates = await write.find(since)
    except Exception as look_failure:
        session.metrics.write_recovery(write.kind, "failed")
        if isinstance(look_failure, ConnectWiseError):
            looking = _why(look_failure)
        else:
            logger.exception("looking for the %s POST %s created failed", write.kind, write.path)
            looking = "an internal error"
        raise OutcomeUnknown(
            f"It is unknown whether the {write.kind} was saved {write.place} (tenant {session.name}): "
            f"the write failed ({why}) and looking for it failed too ({looking}). "
            f"It may or may not have been written; check {write.check} before sending it again.",
            look=write.look,
        ) from None
    reported = session.reported_ids.get(write.kind, {})
    found = next((record for record in candidates if _has_id(record) and record["id"] not in reported), None)
    session.metrics.write_recovery(write.kind, "absent" if found is None else "found")
    return found


def _remember(session: TenantSession, kind: str, record_id: object) -> None:
    if not isinstance(record_id, int):
        return
    ids = session.reported_ids.setdefault(kind, {})
    ids[record_id] = None
    if len(ids) > _REMEMBERED_IDS:
        del ids[next(iter(ids))]  # dicts keep insertion order: this is the oldest


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _why(failure: ConnectWiseError) -> str:
    if failure.status is not None:
        return f"HTTP {failure.status}"
    if isinstance(failure, AmbiguousWriteError):
        return "the connection broke or timed out after it was sent"
    if isinstance(failure, TransportError):
        return "ConnectWise did not answer" if failure.reached else "ConnectWise could not be reached"
    return "ConnectWise could not be reached or did not answer"


@dataclass(frozen=True)
class NotShown:
    """The record after a PATCH does not show all of it: the paths of the operations it does not show, what the
    PATCH's answer was when the record had to be read back (`read_back`), e.g. "ConnectWise gave no answer to
    the change"."""

    paths: list[str]
    what_happened: str
    read_back: bool


@dataclass(frozen=True)
class PlannedPatch(Generic[M]):
    """A PATCH of one record, how to read the record out of an answer, and the sentence of each outcome other
    than applied (`what_happened` as in `NotShown`)."""

    path: str  # the record's: PATCHed, and read back with a GET
    operations: list[dict]
    read: Callable[[dict], M]  # the record in an answer that has an id; a pydantic ValidationError: none
    shows: Callable[[M, dict], bool]  # whether the record holds what an operation sets
    record: str  # "the ticket": what an answer without it is said to be without
    where: str  # "ticket 1003 (tenant acme)": "It is unknown whether <where> was changed: <what_happened>, and ..."
    look: Look
    unreadable: Callable[[str], str]  # why -> how that sentence ends when reading the record back failed
    unknown: Callable[[NotShown], str]  # the answer was lost and the record does not show the PATCH: OutcomeUnknown
    not_applied: Callable[[NotShown], str]  # ConnectWise answered and the record does not show it: Failed
    # How that sentence ends when the call's deadline leaves no time to read the record back.
    no_time: str = "this call had no time left to read it back. Check it before sending the change again."

    def unknown_because(self, what_happened: str, ending: str) -> OutcomeUnknown:
        return OutcomeUnknown(
            f"It is unknown whether {self.where} was changed: {what_happened}, and {ending}", look=self.look
        )


async def patch_checked(session: TenantSession, patch: PlannedPatch[M]) -> M:
    """PATCH and return the record once ConnectWise shows every operation applied (see the module). A 404 to the
    PATCH is raised as it is: each caller says in its own words that the record is gone."""
    lost = False
    try:
        answer = await session.client.patch(patch.path, patch.operations)
        what_happened = f"ConnectWise answered the change without {patch.record}"  # said only if so
    except AmbiguousWriteError:
        answer, what_happened, lost = None, "ConnectWise gave no answer to the change", True
    except NotJsonError as failure:
        answer = None
        what_happened = f"ConnectWise answered the change (HTTP {failure.status}) with a body that is not JSON"
    record = _record_in(answer, patch.read)
    read_back = record is None
    if record is None:
        if lost:  # ConnectWise may still be applying it
            await settle(SETTLE_SECONDS, lambda: patch.unknown_because(what_happened, patch.no_time))
        record = await _read_back(session, patch, what_happened)
    not_shown = [operation["path"] for operation in patch.operations if not patch.shows(record, operation)]
    if not not_shown:
        return record
    why = NotShown(not_shown, what_happened, read_back)
    if lost:
        raise OutcomeUnknown(patch.unknown(why), look=patch.look)
    raise Failed(patch.not_applied(why), look=patch.look)


async def _read_back(session: TenantSession, patch: PlannedPatch[M], what_happened: str) -> M:
    try:
        record = _record_in(await session.client.get(patch.path), patch.read)
        why = f"ConnectWise answered without {patch.record}"
    except ConnectWiseError as failure:
        record, why = None, f"HTTP {failure.status}" if failure.status is not None else "no answer"
    if record is None:
        raise patch.unknown_because(what_happened, patch.unreadable(why))
    return record


def _record_in(answer: object, read: Callable[[dict], M]) -> M | None:
    if not _has_id(answer):
        return None
    try:
        return read(answer)
    except PydanticValidationError:
        return None


def same_text(stored: object, sent: str | None) -> bool:
    """Whether ConnectWise's copy of a text is the text we sent (it may have turned line ends into CRLF)."""

    def normal(text: object) -> str:
        return text.replace("\r\n", "\n").strip() if isinstance(text, str) else ""

    return normal(stored) == normal(sent)


def entered_since(record: dict, field: str, since: datetime) -> bool:
    """False only when the record's entry time is known and before `since`."""
    entered = read_moment(record.get(field))
    return entered is None or entered >= since
