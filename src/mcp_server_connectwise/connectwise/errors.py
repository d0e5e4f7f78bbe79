"""Typed failures of ConnectWise requests.

Every error carries what a person needs to act (HTTP status, ConnectWise's code and message, the method and
the path without its query string) and nothing secret: no header, key or request body ever reaches one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, TypedDict, Unpack

import httpx2

# Bodies that are not ConnectWise JSON (proxies, HTML error pages) are quoted only this far.
_MAX_TEXT_BODY = 300


@dataclass(frozen=True)
class FieldError:
    """One entry of a ConnectWise `errors[]` list, e.g. MissingRequiredField on contact.firstName."""

    code: str | None
    message: str | None
    resource: str | None
    field: str | None

    def __str__(self) -> str:
        where = ".".join(part for part in (self.resource, self.field) if part)
        text = self.message or self.code or "invalid"
        return f"{where}: {text}" if where else text


class RequestContext(TypedDict, total=False):
    """The keyword arguments of ConnectWiseError besides the message: which request failed, and how."""

    method: str | None
    path: str | None
    status: int | None
    code: str | None


class ConnectWiseError(Exception):
    """Base of every failure talking to ConnectWise. What to do about one is the services layer's to say."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.status = status
        self.code = code

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}" if self.code else self.message
        request = " ".join(part for part in (self.method, self.path) if part)
        if self.status is not None:
            request = f"{request} -> HTTP {self.status}" if request else f"HTTP {self.status}"
        return f"{text} [{request}]" if request else text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r}, "
            f"method={self.method!r}, path={self.path!r})"
        )


class NotFoundError(ConnectWiseError):
    """HTTP 404: no such record or endpoint, or one the API member cannot see (on cloud, also rejected keys)."""


class ValidationError(ConnectWiseError):
    """HTTP 400: ConnectWise rejected the request as invalid; `field_errors` names the fields."""

    def __init__(
        self, message: str, *, field_errors: list[FieldError] | None = None, **kwargs: Unpack[RequestContext]
    ) -> None:
        self.field_errors = list(field_errors or [])
        if self.field_errors:
            message = f"{message} ({'; '.join(str(error) for error in self.field_errors)})"
        super().__init__(message, **kwargs)


class AuthenticationError(ConnectWiseError):
    """HTTP 401: the company id or the API keys were rejected."""


class PermissionDeniedError(ConnectWiseError):
    """HTTP 403: the API member's security role does not allow this."""


class ConflictError(ConnectWiseError):
    """HTTP 409: the record changed or is in use."""


class RateLimitedError(ConnectWiseError):
    """HTTP 429: ConnectWise is throttling the tenant; `retry_after` in seconds when it said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Unpack[RequestContext]) -> None:
        self.retry_after = retry_after
        if retry_after is not None:
            message = f"{message} (retry after {retry_after:g} s)"
        super().__init__(message, **kwargs)


class ServerError(ConnectWiseError):
    """HTTP 5xx: ConnectWise (or a gateway in front of it) failed."""


class TransportError(ConnectWiseError):
    """ConnectWise was unreachable or did not answer, and nothing can have changed: a GET, or a write never sent.

    `reached` tells the two apart: False when no connection could be made (refused, unknown host, connect
    timeout); True when ConnectWise accepted the connection and then did not answer in time.
    """

    def __init__(self, message: str, *, reached: bool = True, **kwargs: Unpack[RequestContext]) -> None:
        self.reached = reached
        super().__init__(message, **kwargs)


DeadlineReason = Literal["budget", "throttled", "no_answer", "unreachable", "failing"]


class DeadlineError(ConnectWiseError):
    """The call's deadline would pass before this request could be answered, so it was not sent (again).

    `reason`: the request budget is spent by other requests (`budget`), ConnectWise is throttling (`throttled`),
    it accepts connections but does not answer (`no_answer`), it cannot be reached (`unreachable`), or it keeps
    failing (`failing`). `retry_in`: seconds after which a retry can expect to be served, when known.
    """

    def __init__(
        self, message: str, *, reason: DeadlineReason, retry_in: float | None = None, **kwargs: Unpack[RequestContext]
    ) -> None:
        self.reason = reason
        self.retry_in = retry_in
        super().__init__(message, **kwargs)


class AmbiguousWriteError(ConnectWiseError):
    """A write (any method but GET) was sent but no reliable answer came back: it may or may not have been
    applied, even if it was idempotent and retried.

    Deliberately not a TransportError: callers must not treat it as "nothing happened".
    """


class NotJsonError(ConnectWiseError):
    """A 2xx answer whose body is not JSON: ConnectWise accepted the request, but its answer cannot be read.
    For a write, that means it was probably applied; `status` is the 2xx it answered.
    """


class DiscoveryError(ConnectWiseError):
    """The tenant's base URL could not be found from its site and company id."""


class ImpersonationError(ConnectWiseError):
    """A write could not be made as `member`: ConnectWise refused to make its keys (POST
    /system/members/{member}/tokens; `status` 404: no such member, 403: the API member's role may not, 400),
    answered without usable keys (a 2xx `status`), or refused fresh keys on the write (401). The write was not
    applied."""

    def __init__(self, message: str, *, member: str, **kwargs: Unpack[RequestContext]) -> None:
        self.member = member
        super().__init__(message, **kwargs)


_BY_STATUS: dict[int, type[ConnectWiseError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; ConnectWise sends whole seconds. Anything else is ignored."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _error_body(response: httpx2.Response) -> dict | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    # A 429 may name its code `error` instead of `code` (API.md).
    if isinstance(body, dict) and ("code" in body or "error" in body or "message" in body):
        return body
    return None


def _text_excerpt(response: httpx2.Response) -> str:
    text = " ".join(response.text.split())
    if len(text) > _MAX_TEXT_BODY:
        text = text[:_MAX_TEXT_BODY] + "..."
    return text or f"HTTP {response.status_code} with an empty body"


def _field_errors(body: dict) -> list[FieldError]:
    entries = body.get("errors") or []
    return [
        FieldError(
            code=entry.get("code"),
            message=entry.get("message"),
            resource=entry.get("resource"),
            field=entry.get("field"),
        )
        for entry in entries
        if isinstance(entry, dict)
    ]


def error_from_response(method: str, path: str, response: httpx2.Response) -> ConnectWiseError:
    """The typed error for a non-success ConnectWise response. `path` must carry no query string."""
    status = response.status_code
    body = _error_body(response)
    code = None
    if body is not None:
        code = body.get("code") or body.get("error")
        # Messages can hold line breaks (.NET exception text); keep the error on one line.
        message = " ".join(str(body.get("message") or code or f"HTTP {status}").split())
    else:
        message = _text_excerpt(response)
    context: RequestContext = {"method": method, "path": path, "status": status, "code": code}
    error_class = _BY_STATUS.get(status) or (ServerError if status >= 500 else ConnectWiseError)
    if error_class is ValidationError:
        return ValidationError(message, field_errors=_field_errors(body or {}), **context)
    if error_class is RateLimitedError:
        return RateLimitedError(message, retry_after=parse_retry_after(response.headers.get("Retry-After")), **context)
    return error_class(message, **context)
