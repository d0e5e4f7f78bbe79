"""The async ConnectWise REST client: auth headers, base URL discovery, retries, rate budget and pagination.

One pooled `httpx2.AsyncClient` per tenant. Every request goes through `_send`, the single place where the
rate budget is spent, attempts are recorded, retries are decided (`retry.decide`) and failures become
typed errors (`errors`). Secrets live only in the Authorization header and never reach a log line,
an error or a repr.

Impersonation: a write made in a call scope with a `member` (`scope.call_scope(member=...)`) is sent with that
member's keys, from `POST /system/members/{member}/tokens` (made with the API member's keys, through `_send`
like any request: it spends the budget and is recorded). The keys are kept per member until shortly before
their `expiration` and shared by concurrent writes; keys ConnectWise refuses with 401 (revoked, or expired by
its clock) are fetched afresh and the write is sent once more - a 401 applied nothing. Reads always use the API
member's keys.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2

from . import endpoints
from .conditions import Expr, serialize
from .errors import (
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
    error_from_response,
    parse_retry_after,
)
from .hosts import is_loopback_host
from .models import read_moment
from .ratelimit import Budget, BudgetWaitTooLong, RateBudget
from .retry import Outcome, RetryPolicy, decide
from .scope import CallScope
from .scope import current as current_scope

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000  # ConnectWise's ceiling for pageSize

# These fail before any byte of the request leaves, so even a POST may be retried after them.
_NEVER_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)
# An attempt needs at least this much of the call's deadline left to be worth sending.
_MIN_ATTEMPT_SECONDS = 0.25


def _usable(remaining: float | None) -> float | None:
    """How long a request may wait for the budget: what is left of the deadline, less one attempt's minimum."""
    return None if remaining is None else max(0.0, remaining - _MIN_ATTEMPT_SECONDS)


def _passes(delay: float, scope: CallScope) -> bool:
    """Whether waiting `delay` before the next attempt would leave it too little of the call's deadline."""
    remaining = scope.remaining()
    return remaining is not None and delay + _MIN_ATTEMPT_SECONDS > remaining


def _out_of_time(method: str, path: str, maybe_applied: bool) -> ConnectWiseError:
    if method != "GET" and maybe_applied:
        return AmbiguousWriteError("the request was sent but no answer came back in time", method=method, path=path)
    return DeadlineError("no time was left for another attempt", reason="no_answer", method=method, path=path)


# ConnectWise advises few parallel calls per tenant (API.md, rate limits).
_MAX_CONNECTIONS = 10

# A member's impersonation keys are fetched again once less than this share of their lifetime is left, and at
# most this many seconds before they expire: a write never goes out on keys about to lapse.
_REFRESH_EARLY_SHARE = 0.1
_REFRESH_EARLY_MAX_SECONDS = 300.0
# [I] How long keys whose `expiration` cannot be read are kept: ConnectWise documents none. Keys that lapse
# sooner are refused with 401 and fetched again.
_UNREAD_EXPIRY_SECONDS = 600.0

# Base URLs found via /login/companyinfo, for the whole process, keyed by (site, company) in lower case.
_discovered_base_urls: dict[tuple[str, str], str] = {}

_LINK_PARAMS_RE = re.compile(r"<[^>]*>([^<]*)")
_REL_RE = re.compile(r'\brel\s*=\s*(?:"([^"]*)"|([^\s;,]+))', re.IGNORECASE)


@dataclass(frozen=True, repr=False)
class ApiCredentials:
    """A ConnectWise API member's key pair. Its repr and str never show the keys."""

    public_key: str
    private_key: str

    def __repr__(self) -> str:
        return "ApiCredentials(public_key='***', private_key='***')"


@dataclass(frozen=True)
class ClientSettings:
    company_id: str
    client_id: str
    base_url: str | None = None  # e.g. https://api-na.myconnectwise.net/v2025_1/apis/3.0
    site: str | None = None  # e.g. api-na.myconnectwise.net; the base URL is then discovered
    api_version: str = "2025.1"
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    requests_per_minute: int = 600  # well under ConnectWise's ~1,000/min
    retry: RetryPolicy = RetryPolicy()

    def __post_init__(self) -> None:
        if (self.base_url is None) == (self.site is None):
            raise ValueError("give exactly one of base_url or site")


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP attempt, as the audit log records it: no query string, headers or body."""

    method: str
    path: str
    status: int | None  # None when no response came back
    elapsed_ms: float
    attempt: int
    budget_wait_ms: float = 0.0  # time spent waiting for the rate budget before this attempt
    credentials: bool = False  # a request for a member's impersonation keys: it changes no record

    @property
    def writes(self) -> bool:
        """Whether this attempt may have changed a record in ConnectWise."""
        return self.method != "GET" and not self.credentials


@dataclass(frozen=True, repr=False)
class _MemberKeys:
    """A member's impersonation keys, as the Authorization headers of its writes, and when to fetch new ones."""

    headers: dict[str, str]
    refresh_at: float  # on the client's wall clock

    def __repr__(self) -> str:
        return "_MemberKeys(headers='***')"


@dataclass
class Page:
    """One page of a list; `has_next` comes from the Link header's rel="next"."""

    items: list[dict]
    page: int
    page_size: int
    has_next: bool


def has_next_link(link_header: str | None) -> bool:
    """Whether a ConnectWise `Link` header offers a rel="next" page."""
    for match in _LINK_PARAMS_RE.finditer(link_header or ""):
        for rel in _REL_RE.finditer(match.group(1)):
            if "next" in (rel.group(1) or rel.group(2)).lower().split():
                return True
    return False


def _conditions_text(name: str, expr: Expr | None) -> str | None:
    if expr is None:
        return None
    # A raw string could carry anything; conditions are built with the `conditions` module, never concatenated.
    if not isinstance(expr, typing.get_args(Expr)):
        raise TypeError(f"{name} takes an expression built with the conditions module, not {type(expr).__name__}")
    return serialize(expr)


def _codebase(response: httpx2.Response) -> str | None:
    """`Codebase` of a companyinfo answer without its slashes (`v2025_1/` -> `v2025_1`), if it has one."""
    try:
        info = response.json()
    except ValueError:
        return None
    codebase = info.get("Codebase") if isinstance(info, dict) else None
    if not isinstance(codebase, str) or not codebase.strip("/"):
        return None
    return codebase.strip("/")


def _json_body(method: str, path: str, response: httpx2.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise NotJsonError(
            "ConnectWise answered with a body that is not JSON", method=method, path=path, status=response.status_code
        ) from None


def _invalid_url_error(exc: httpx2.InvalidURL, method: str, path: str) -> ConnectWiseError:
    """The error for a URL httpx refused to build, raised before anything is sent. The URL is left out:
    it may hold a whole search's conditions."""
    if "too long" in str(exc):  # httpx: "URL too long", "URL component 'query' too long"
        problem = "the request is too long to send as a URL; narrow the conditions"
    else:
        problem = f"the request URL is invalid: {str(exc)[:200]}"
    return ConnectWiseError(problem, method=method, path=path)


def _check_path(path: str) -> None:
    # Paths are relative to the tenant's base URL; anything else could send the keys to another host.
    if not path.startswith("/") or path.startswith("//") or any(ch in path for ch in "?#"):
        raise ValueError(f"path must be relative to the API base, start with '/' and carry no query: {path!r}")


class ConnectWiseClient:
    """An async client for one ConnectWise tenant (one company, one API member)."""

    def __init__(
        self,
        settings: ClientSettings,
        credentials: ApiCredentials,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        on_request: Callable[[RequestRecord], None] | None = None,
        before_write: Callable[[str, str, Any], Awaitable[None]] | None = None,
        budget: Budget | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._on_request = on_request
        # Awaited with (method, path, body) before a write is first sent; if it raises, the write is not sent.
        self._before_write = before_write
        self._sleep = sleep
        self._base_url = settings.base_url.rstrip("/") if settings.base_url else None
        self._discovery_lock = asyncio.Lock()  # concurrent first calls discover once
        self._api_headers = self._headers(credentials)
        self._wall_clock = wall_clock  # what impersonation keys' expiration is compared with
        self._member_keys: dict[str, _MemberKeys] = {}
        self._member_key_fetches: dict[str, asyncio.Lock] = {}  # concurrent first writes as a member fetch once
        # The tenant's budget (the state store's, shared with other processes), else one of this client's own.
        self._budget = budget or RateBudget(settings.requests_per_minute, clock=clock, sleep=sleep)
        self._http = httpx2.AsyncClient(
            transport=transport,
            timeout=httpx2.Timeout(
                settings.read_timeout,
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                write=settings.read_timeout,
                pool=settings.read_timeout,
            ),
            limits=httpx2.Limits(max_connections=_MAX_CONNECTIONS),
        )

    def __repr__(self) -> str:
        return f"ConnectWiseClient(company_id={self._settings.company_id!r}, base_url={self._base_url!r})"

    def _headers(self, credentials: ApiCredentials) -> dict[str, str]:
        settings = self._settings
        login = f"{settings.company_id}+{credentials.public_key}:{credentials.private_key}"
        return {
            "Authorization": "Basic " + base64.b64encode(login.encode()).decode("ascii"),
            "clientId": settings.client_id,
            "Accept": f"application/vnd.connectwise.com+json; version={settings.api_version}",
        }

    async def __aenter__(self) -> ConnectWiseClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- base URL ------------------------------------------------------------------------------------

    async def base_url(self) -> str:
        """The tenant's API base URL, discovered once per process when only `site` is configured."""
        if self._base_url is None:
            async with self._discovery_lock:
                if self._base_url is None:
                    self._base_url = await self._discover_base_url()
        return self._base_url

    async def _discover_base_url(self) -> str:
        site, company = self._settings.site or "", self._settings.company_id
        key = (site.lower(), company.lower())
        if key in _discovered_base_urls:
            return _discovered_base_urls[key]
        # `site` is host[:port]; only the local sandbox is spoken to without TLS.
        loopback = is_loopback_host(urlsplit("//" + site).hostname or "")
        origin = f"{'http' if loopback else 'https'}://{site}"
        path = endpoints.company_info(company)
        try:
            # Unauthenticated by design: this call only maps the company to its codebase.
            response = await self._send(
                "GET", origin + path, path, idempotent=True, headers={"Accept": "application/json"}
            )
        except ConnectWiseError as exc:
            raise DiscoveryError(
                f"could not look up company {company!r} at {site}: {exc.message}",
                method="GET",
                path=path,
                status=exc.status,
                code=exc.code,
            ) from None
        codebase = _codebase(response)
        if codebase is None:
            # An unknown company gets a text body such as "Cannot route. Codebase/company is invalid".
            answer = " ".join(response.text.split())[:200]
            raise DiscoveryError(
                f"{site} does not know company {company!r} (it answered: {answer!r})",
                method="GET",
                path=path,
                status=response.status_code,
            )
        base_url = f"{origin}/{codebase}/apis/3.0"
        logger.debug("discovered base URL %s for company %s", base_url, company)
        _discovered_base_urls[key] = base_url
        return base_url

    # --- the one request path ------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        path: str,
        *,
        idempotent: bool,
        headers: dict[str, str],
        params: dict[str, Any] | None = None,
        json: Any = None,
        credentials: bool = False,
    ) -> httpx2.Response:
        """Send with the rate budget and retries; return a 2xx response or raise a typed error. `credentials`:
        a request for impersonation keys, which changes no record."""
        policy = self._settings.retry
        scope = current_scope()
        # Only a GET (or a request for keys) is known to change nothing: once any other request may have reached
        # ConnectWise without an answer, a final failure leaves its outcome unknown, even for an idempotent one.
        is_write = method != "GET" and not credentials
        maybe_applied = False
        attempt = 0
        while True:
            attempt += 1
            try:
                waited = await self._budget.acquire(scope.caller, max_wait=_usable(scope.remaining()))
            except BudgetWaitTooLong as exc:
                raise DeadlineError(
                    f"the request budget of {self._budget.requests_per_minute}/min is spent by other requests",
                    reason="budget",
                    retry_in=exc.wait,
                    method=method,
                    path=path,
                ) from None
            remaining = scope.remaining()
            if remaining is not None and remaining < _MIN_ATTEMPT_SECONDS:
                raise _out_of_time(method, path, maybe_applied)
            started = time.perf_counter()
            try:
                response = await self._http.request(
                    method, url, params=params, json=json, headers=headers, timeout=self._timeout(remaining)
                )
            except httpx2.InvalidURL as exc:
                raise _invalid_url_error(exc, method, path) from None
            except asyncio.CancelledError:
                # The call was stopped (cancelled, or out of time) with this attempt on the wire: it was sent.
                self._record(method, path, None, started, attempt, waited, credentials)
                raise
            except httpx2.TransportError as exc:
                self._record(method, path, None, started, attempt, waited, credentials)
                sent = not isinstance(exc, _NEVER_SENT)
                maybe_applied = maybe_applied or sent
                delay = decide(policy, attempt, Outcome(sent=sent), idempotent=idempotent)
                # `from None`: the httpx error holds the request, Authorization header included.
                failure = f"{type(exc).__name__}: {exc}".rstrip(": ")
                if delay is None or _passes(delay, scope):
                    if is_write and maybe_applied:
                        raise AmbiguousWriteError(
                            f"the request was sent but no answer came back ({failure})", method=method, path=path
                        ) from None
                    if delay is not None:
                        raise DeadlineError(
                            f"no answer from ConnectWise in time ({failure})",
                            reason="no_answer" if sent else "unreachable",
                            method=method,
                            path=path,
                        ) from None
                    raise TransportError(
                        f"no answer from ConnectWise ({failure})", reached=sent, method=method, path=path
                    ) from None
            else:
                self._record(method, path, response.status_code, started, attempt, waited, credentials)
                if response.is_success:
                    return response
                error = error_from_response(method, path, response)
                # A 5xx without ConnectWise's error body (a gateway timing out, say) is no answer from
                # ConnectWise: a write may have been applied behind it.
                maybe_applied = maybe_applied or (isinstance(error, ServerError) and error.code is None)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                outcome = Outcome(status=response.status_code, retry_after=retry_after)
                delay = decide(policy, attempt, outcome, idempotent=idempotent)
                if delay is None or _passes(delay, scope):
                    # A 5xx or 429 says nothing about an earlier attempt that may have been applied; a 4xx
                    # such as 400 or 404 would have refused that attempt too.
                    if is_write and maybe_applied and isinstance(error, (ServerError, RateLimitedError)):
                        raise AmbiguousWriteError(
                            f"the request was sent but no clear answer came back (last: HTTP {response.status_code}, "
                            f"{error.message})",
                            method=method,
                            path=path,
                            status=response.status_code,
                        )
                    if delay is not None and isinstance(error, (ServerError, RateLimitedError)):
                        throttled = isinstance(error, RateLimitedError)
                        raise DeadlineError(
                            error.message,
                            reason="throttled" if throttled else "failing",
                            retry_in=delay if throttled else None,
                            method=method,
                            path=path,
                            status=response.status_code,
                        )
                    raise error
            logger.debug("retrying %s %s in %.2f s after attempt %d", method, path, delay, attempt)
            await self._sleep(delay)

    def _timeout(self, remaining: float | None) -> httpx2.Timeout:
        """The client's timeouts, cut to what is left of the call's deadline."""
        settings = self._settings
        read = settings.read_timeout if remaining is None else min(settings.read_timeout, remaining)
        return httpx2.Timeout(read, connect=min(settings.connect_timeout, read), read=read, write=read, pool=read)

    def _record(
        self,
        method: str,
        path: str,
        status: int | None,
        started: float,
        attempt: int,
        waited: float = 0.0,
        credentials: bool = False,
    ) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.debug("%s %s -> %s in %.0f ms (attempt %d)", method, path, status or "no answer", elapsed_ms, attempt)
        if self._on_request is not None:
            try:
                self._on_request(RequestRecord(method, path, status, elapsed_ms, attempt, waited * 1000, credentials))
            except Exception:  # a broken observer must not turn a request that happened into a failure
                logger.exception("on_request hook failed for %s %s", method, path)

    async def _call(
        self, method: str, path: str, *, idempotent: bool, params: dict[str, Any] | None = None, json: Any = None
    ) -> httpx2.Response:
        _check_path(path)
        url = await self.base_url() + path
        member = current_scope().member if method != "GET" else None
        # The member's keys come first: a write they cannot be had for is not announced, and not sent.
        keys = await self._keys_of(member) if member is not None else None
        if method != "GET" and self._before_write is not None:
            await self._before_write(method, path, json)
        if keys is None:
            return await self._send(
                method, url, path, idempotent=idempotent, headers=self._api_headers, params=params, json=json
            )
        assert member is not None
        try:
            return await self._send(
                method, url, path, idempotent=idempotent, headers=keys.headers, params=params, json=json
            )
        except AuthenticationError:
            # Keys refused (revoked, or expired by ConnectWise's clock): nothing was applied, so fresh keys may
            # send it once more.
            keys = await self._keys_of(member, refused=keys)
        try:
            return await self._send(
                method, url, path, idempotent=idempotent, headers=keys.headers, params=params, json=json
            )
        except AuthenticationError:
            raise ImpersonationError(
                "ConnectWise refused the member's fresh keys too", member=member, method=method, path=path, status=401
            ) from None

    # --- impersonation -------------------------------------------------------------------------------

    async def _keys_of(self, member: str, *, refused: _MemberKeys | None = None) -> _MemberKeys:
        """The member's impersonation keys: the kept ones while fresh (and not `refused`), else new ones."""

        def usable(keys: _MemberKeys | None) -> _MemberKeys | None:
            fresh = keys is not None and keys is not refused and self._wall_clock() < keys.refresh_at
            return keys if fresh else None

        if (keys := usable(self._member_keys.get(member))) is not None:
            return keys
        async with self._member_key_fetches.setdefault(member, asyncio.Lock()):
            if (keys := usable(self._member_keys.get(member))) is not None:
                return keys  # fetched by a concurrent write meanwhile
            keys = self._member_keys[member] = await self._fetch_keys(member)
            return keys

    async def _fetch_keys(self, member: str) -> _MemberKeys:
        path = endpoints.member_tokens(member)
        url = await self.base_url() + path
        fetched_at = self._wall_clock()
        try:
            response = await self._send("POST", url, path, idempotent=True, headers=self._api_headers, credentials=True)
        except (NotFoundError, PermissionDeniedError, ValidationError, ConflictError) as exc:
            raise ImpersonationError(
                exc.message, member=member, method="POST", path=path, status=exc.status, code=exc.code
            ) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        body: dict[str, Any] = answer if isinstance(answer, dict) else {}
        public_key, private_key = body.get("publicKey"), body.get("privateKey")
        if not (isinstance(public_key, str) and public_key and isinstance(private_key, str) and private_key):
            raise ImpersonationError(
                "ConnectWise answered without a publicKey and privateKey",
                member=member,
                method="POST",
                path=path,
                status=response.status_code,
            )
        expires = read_moment(body.get("expiration"))
        expires_at = expires.timestamp() if expires is not None else fetched_at + _UNREAD_EXPIRY_SECONDS
        lifetime = max(0.0, expires_at - fetched_at)
        early = min(_REFRESH_EARLY_MAX_SECONDS, _REFRESH_EARLY_SHARE * lifetime)
        logger.debug("fetched impersonation keys for member %s, kept for %.0f s", member, lifetime - early)
        return _MemberKeys(self._headers(ApiCredentials(public_key, private_key)), expires_at - early)

    # --- reads ---------------------------------------------------------------------------------------

    async def get(self, path: str, *, params: dict | None = None) -> Any:
        return _json_body("GET", path, await self._call("GET", path, idempotent=True, params=params))

    async def get_page(
        self,
        path: str,
        *,
        conditions: Expr | None = None,
        child_conditions: Expr | None = None,
        custom_field_conditions: Expr | None = None,
        order_by: str | None = None,
        fields: Sequence[str] | None = None,
        page: int = 1,
        page_size: int = 25,
    ) -> Page:
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}")
        query = {
            "conditions": _conditions_text("conditions", conditions),
            "childConditions": _conditions_text("child_conditions", child_conditions),
            "customFieldConditions": _conditions_text("custom_field_conditions", custom_field_conditions),
            "orderBy": order_by,
            "fields": ",".join(fields) if fields else None,
            "pageSize": page_size,
            "page": page,
        }
        params = {name: value for name, value in query.items() if value is not None}
        response = await self._call("GET", path, idempotent=True, params=params)
        items = _json_body("GET", path, response)
        if not isinstance(items, list):
            raise ConnectWiseError(
                "ConnectWise answered a list request without a list",
                method="GET",
                path=path,
                status=response.status_code,
            )
        return Page(items=items, page=page, page_size=page_size, has_next=has_next_link(response.headers.get("Link")))

    async def iterate(
        self,
        path: str,
        *,
        conditions: Expr | None = None,
        order_by: str | None = None,
        fields: Sequence[str] | None = None,
        page_size: int = 100,
        limit: int | None = None,
    ) -> AsyncIterator[dict]:
        """Every matching record, page by page while the Link header offers a next page.

        With `limit`, no page is fetched once `limit` rows are in hand, and pages are no larger than `limit`.
        The next page is requested by number against the configured base URL, never by fetching the Link URL,
        so no request can leave the tenant's host.
        """
        if limit is not None and limit <= 0:
            return
        size = page_size if limit is None else min(page_size, limit)
        remaining = limit
        page_number = 1
        while True:
            page = await self.get_page(
                path, conditions=conditions, order_by=order_by, fields=fields, page=page_number, page_size=size
            )
            for item in page.items:
                yield item
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return
            if not page.has_next or not page.items:
                return
            page_number += 1

    async def list_all(
        self,
        path: str,
        *,
        conditions: Expr | None = None,
        order_by: str | None = None,
        fields: Sequence[str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        limit: int | None = None,
    ) -> list[dict]:
        return [
            item
            async for item in self.iterate(
                path, conditions=conditions, order_by=order_by, fields=fields, page_size=page_size, limit=limit
            )
        ]

    async def count(self, path: str, *, conditions: Expr | None = None) -> int:
        """How many records of the list at `path` match; calls `{path}/count`."""
        text = _conditions_text("conditions", conditions)
        count_path = endpoints.count(path)
        body = await self.get(count_path, params={"conditions": text} if text else None)
        if not isinstance(body, dict) or not isinstance(body.get("count"), int):
            raise ConnectWiseError(
                "ConnectWise answered a count request without a count", method="GET", path=count_path
            )
        return body["count"]

    # --- writes --------------------------------------------------------------------------------------

    async def post(self, path: str, body: dict) -> Any:
        """Create. Never re-sent once it may have reached ConnectWise: see AmbiguousWriteError."""
        return _json_body("POST", path, await self._call("POST", path, idempotent=False, json=body))

    async def patch(self, path: str, operations: list[dict]) -> Any:
        """Apply a JSON Patch. Only all-`replace` patches are idempotent, so only those are retried."""
        idempotent = all(operation.get("op") == "replace" for operation in operations)
        return _json_body("PATCH", path, await self._call("PATCH", path, idempotent=idempotent, json=operations))

    async def put(self, path: str, body: dict) -> Any:
        return _json_body("PUT", path, await self._call("PUT", path, idempotent=True, json=body))

    async def delete(self, path: str) -> None:
        await self._call("DELETE", path, idempotent=True)
