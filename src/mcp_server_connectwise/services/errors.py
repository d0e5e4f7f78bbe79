"""The three kinds of expected failure a service reports, each as one sentence saying what to do, and how
those sentences quote what they are about.

- `Refused`: the request itself was wrong or not allowed (unknown ticket, status not on the board, a time
  without a zone, a read-only tenant). Nothing was written. The caller fixes the request.
- `Failed`: the system failed (keys rejected, ConnectWise down or throttling). The request may be fine;
  someone fixes the environment or waits.
- `OutcomeUnknown`: a write was sent and whether ConnectWise applied it could not be found out. A person
  checks before anything is sent again.

Anything else escaping a service is a bug, and the MCP layer keeps its details off the wire.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Literal

from mcp_server_connectwise.connectwise import (
    AmbiguousWriteError,
    AuthenticationError,
    ConflictError,
    ConnectWiseError,
    DeadlineError,
    DiscoveryError,
    ImpersonationError,
    NotFoundError,
    NotJsonError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
    ValidationError,
)
from mcp_server_connectwise.untrusted import one_line

# How much of a caller's value a message quotes back.
_SHOWN_CHARS = 60
# How much of a ConnectWise message (which can echo submitted values) a sentence quotes.
_QUOTED_CHARS = 300


class Look(Enum):
    """A check a failure asks for. Services name the check, never a tool: the tool layer points at the tool
    that provides it, when the caller has one (`Offer.look`)."""

    FIND_TICKET = "find the ticket"
    READ_TICKET = "read the ticket"
    BOARD_STATUSES = "see the board's statuses"
    LIST_TIME = "list the time entries"
    FIND_COMPANY = "find the company"
    FIND_CONTACT = "find the contact"
    AGREEMENTS = "see the company's agreements"
    FIND_CONFIGURATION = "find the configuration"


class ServiceError(Exception):
    """An expected failure; str() is one actionable sentence, `look` the check it asks for, if any."""

    outcome: Literal["refused", "error", "unknown"] = "error"

    def __init__(self, message: str, *, look: Look | None = None) -> None:
        super().__init__(message)
        self.look = look


class Refused(ServiceError):
    """The caller's request was wrong or not allowed; nothing was written."""

    outcome = "refused"


class Failed(ServiceError):
    """ConnectWise, the network or the local setup failed; not the caller's mistake."""

    outcome = "error"


class OutcomeUnknown(ServiceError):
    """A write may or may not have been applied, and looking could not tell; the sentence says what to check."""

    outcome = "unknown"


def shown(value: object) -> str:
    """`value` as a message quotes it: repr (hidden characters escaped), long text and huge numbers cut."""
    if isinstance(value, str) and len(value) > _SHOWN_CHARS:
        return f"{value[:_SHOWN_CHARS]!r}... ({len(value)} characters)"
    if isinstance(value, int) and abs(value) >= 10**_SHOWN_CHARS:
        # str() of an int over 4300 digits raises ValueError: count the digits and show the first few.
        digits = int(abs(value).bit_length() * 0.30102999566398) + 1
        if abs(value) < 10 ** (digits - 1):
            digits -= 1
        leading = abs(value) // 10 ** (digits - 12)
        return f"{'-' if value < 0 else ''}{leading}... ({digits} digits)"
    return repr(value)


def sentence(text: str) -> str:
    """A lower-level message (`unknown tenant 'x'; ...`) as the start of a sentence: its first letter capitalised."""
    return text[:1].upper() + text[1:]


def _retry_in(seconds: float | None) -> str:
    return f"retry in {max(1, math.ceil(seconds))} s" if seconds is not None else "retry in a minute"


def _out_of_time(exc: DeadlineError, tenant: str, unsent: str) -> ServiceError:
    """The sentence for a request the call's deadline did not leave time for: what to do, and for a write
    that it was not sent."""
    if exc.reason == "budget":
        return Failed(
            f"Tenant {tenant}'s request budget is taken by other calls right now; {_retry_in(exc.retry_in)}.{unsent}"
        )
    if exc.reason == "throttled":
        return Failed(f"ConnectWise is throttling tenant {tenant}; {_retry_in(exc.retry_in)}.{unsent}")
    if exc.reason == "unreachable":
        return Failed(
            f"ConnectWise for tenant {tenant} could not be reached within the call's time; check the network and "
            f"the tenant's site or base_url, then try again.{unsent}"
        )
    if exc.reason == "failing":
        return Failed(f"ConnectWise keeps failing on its side for tenant {tenant}; try again later.{unsent}")
    return Failed(
        f"ConnectWise for tenant {tenant} did not answer within the call's time; it may be overloaded: try again "
        f"in a minute.{unsent}"
    )


def _not_as_member(exc: ImpersonationError, tenant: str) -> ServiceError:
    """The sentence for a write that could not be made as the caller's ConnectWise member (`member` of its
    principal): said so, with what to fix; the write was not sent."""
    member = shown(exc.member)
    fix = "or remove `member` from this principal in [http.principals]"
    if exc.status == 404:
        problem = (
            f"ConnectWise (tenant {tenant}) has no member {member} to write as: correct `member` in [http.principals]"
        )
    elif exc.status == 403:
        problem = (
            f"The API member of tenant {tenant} may not act as member {member} (its security role cannot create "
            f"member tokens): an administrator can allow it, {fix}"
        )
    elif exc.status == 401:  # the keys were made, then refused on the write
        problem = (
            f"ConnectWise (tenant {tenant}) refused the keys it made for member {member}: check that member, {fix}"
        )
    else:
        problem = (
            f"ConnectWise (tenant {tenant}) gave no keys to write as member {member} "
            f"({one_line(exc.message)[:_QUOTED_CHARS]}): check that member, {fix}"
        )
    return Failed(f"{problem}. The change was not sent.")


def explain(exc: ConnectWiseError, tenant: str, *, write_unsent: bool = False) -> ServiceError:
    """The sentence for a ConnectWise failure in `tenant` that the service did not handle itself.
    `write_unsent`: the call was to write, and had sent no write when this happened (it failed reading)."""
    unsent = " The change was not sent." if write_unsent or exc.method not in (None, "GET") else ""
    if isinstance(exc, ImpersonationError):
        return _not_as_member(exc, tenant)
    if isinstance(exc, AmbiguousWriteError):
        return OutcomeUnknown(
            f"The change was sent to ConnectWise (tenant {tenant}) but no answer came back, so it is unknown whether "
            "it was applied; check the ticket before trying again, and do not resend blindly.",
            look=Look.READ_TICKET,
        )
    if isinstance(exc, ValidationError):
        return Refused(
            f"ConnectWise (tenant {tenant}) rejected the request: {one_line(exc.message)[:_QUOTED_CHARS]}. "
            "Correct it and try again."
        )
    if isinstance(exc, NotFoundError):
        return Refused(f"ConnectWise (tenant {tenant}) has no such record ({exc.method} {exc.path}); check the id.")
    if isinstance(exc, AuthenticationError):
        return Failed(
            f"ConnectWise rejected the API keys of tenant {tenant}; check its company_id and store the right keys "
            f"with `mcp-server-connectwise tenants set-keys {tenant}`."
        )
    if isinstance(exc, PermissionDeniedError):
        return Failed(
            f"The API member of tenant {tenant} is not allowed to do this by its ConnectWise security role; "
            "an administrator can grant it."
        )
    if isinstance(exc, ConflictError):
        return Failed(f"The record is in use or changed in tenant {tenant}; read it again, then retry.")
    if isinstance(exc, RateLimitedError):
        wait = f"{exc.retry_after:g} seconds" if exc.retry_after is not None else "a minute"
        return Failed(f"ConnectWise is rate limiting tenant {tenant}; wait {wait} before sending more requests.")
    if isinstance(exc, DiscoveryError):
        return Failed(
            f"The ConnectWise site of tenant {tenant} could not be found; check its site and company_id in the config."
        )
    if isinstance(exc, DeadlineError):
        return _out_of_time(exc, tenant, unsent)
    if isinstance(exc, TransportError):
        if not exc.reached:
            return Failed(
                f"ConnectWise for tenant {tenant} could not be reached (the connection was refused or the host is "
                f"unknown); check the network and the tenant's site or base_url, then try again.{unsent}"
            )
        return Failed(
            f"ConnectWise for tenant {tenant} accepted the connection but did not answer in time; it may be "
            f"overloaded: try again in a minute.{unsent}"
        )
    if isinstance(exc, ServerError):
        return Failed(f"ConnectWise failed on its side (HTTP {exc.status}) for tenant {tenant}; try again later.")
    if isinstance(exc, NotJsonError):
        if exc.method != "GET":
            # A 2xx is ConnectWise accepting the write; only its answer could not be read.
            return OutcomeUnknown(
                f"ConnectWise accepted the change (HTTP {exc.status}, tenant {tenant}) but answered with a body that "
                "is not JSON, so it was probably applied; check the ticket before sending it again.",
                look=Look.READ_TICKET,
            )
        return Failed(
            f"ConnectWise answered (HTTP {exc.status}) for tenant {tenant} with a body that is not JSON; try again later."
        )
    if exc.status is None:
        # A local error (e.g. a request too long to send as a URL): its own sentence says what to do.
        return Refused(f"{sentence(one_line(exc.message)[:_QUOTED_CHARS])} (tenant {tenant}).")
    status = f"HTTP {exc.status}"
    return Failed(f"ConnectWise answered an unexpected error ({status}) for tenant {tenant}; try again later.")
