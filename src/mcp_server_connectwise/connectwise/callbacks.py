"""ConnectWise's callbacks (webhooks): the body ConnectWise POSTs, its signature, and where its signing key may
be fetched from. Knows nothing of MCP.

A delivery (API.md, "Rate limits and callbacks") is JSON: `MessageId`, `CompanyId`, `MemberId`, `Action`
(added, updated, deleted), `Type` (ticket, time, ...), `ID`, `Entity` (the record as a JSON *string*, null on
delete), `Metadata.key_url` and `CallbackObjectRecId`. Its header `x-content-signature` is
`base64(HMAC-SHA256(key=SHA256(signing_key), msg=raw body))`, where `signing_key` is what `GET key_url`
answers (`{"signing_key": "..."}`).

The key URL comes from the body, so anyone can name one: it is fetched only over https from the tenant's own
ConnectWise host (`KeyHosts`: its API host, its `site`, or its `callback_key_hosts`; plain http only on
loopback, for the sandbox), never following a redirect, within a short timeout and a small size cap, and no
more than a few times a minute per tenant however many forged deliveries arrive (`SigningKeys`). A key URL is
never logged whole: its query names the key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx2
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from .hosts import is_loopback_host
from .models import CWFlag, CWText, CWWholeNumber, Record

SIGNATURE_HEADER = "x-content-signature"
Action = Literal["added", "updated", "deleted"]
# A delivery must be answered within ConnectWise's 5 s; a cold key's fetch has to fit inside that.
KEY_FETCH_TIMEOUT_SECONDS = 3.0
MAX_KEY_ANSWER_BYTES = 4096  # `{"signing_key": "..."}`: a few dozen bytes
# Key fetches per tenant per minute, at most: forged deliveries naming fresh key URLs must not turn this
# server into a flood of requests at the tenant's ConnectWise.
KEY_FETCHES_PER_MINUTE = 10
MAX_CACHED_KEYS = 64  # per tenant; a tenant has a key per registration at most
_DEFAULT_PORTS = {"https": 443, "http": 80}


class NotACallback(ValueError):
    """The body is not a ConnectWise callback; str() says what is wrong with it (never quoting it)."""


class KeyUnavailable(Exception):
    """The signing key could not be had; str() says why without the key URL. `temporary`: ConnectWise or the
    fetch budget may allow it later (`retry_after` seconds, when known); else the key URL is not to be used."""

    def __init__(self, reason: str, *, temporary: bool = False, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.temporary = temporary or retry_after is not None
        self.retry_after = retry_after


class Metadata(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key_url: str = Field(min_length=1, max_length=2000)


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class CallbackPayload(BaseModel):
    """The fields of a delivery this server reads (the recorded payloads carry a few more)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message_id: str = Field(alias="MessageId", min_length=1, max_length=100)
    company_id: str = Field(alias="CompanyId", min_length=1, max_length=100)
    member_id: str | None = Field(None, alias="MemberId", max_length=100)
    action: Annotated[Action, BeforeValidator(_lower)] = Field(alias="Action")
    type: Annotated[str, BeforeValidator(_lower)] = Field(alias="Type", pattern=r"^[a-z][a-z_]{0,49}$")
    id: int = Field(alias="ID", ge=0, le=2**31 - 1)
    entity: str | None = Field(None, alias="Entity")
    metadata: Metadata = Field(alias="Metadata")
    callback_id: int | None = Field(None, alias="CallbackObjectRecId")

    def entity_record(self) -> dict[str, Any] | None:
        """`Entity` decoded: the record as ConnectWise serves it, or None (a delete, or text that is no object)."""
        if self.entity is None:
            return None
        try:
            record = json.loads(self.entity)
        except (ValueError, RecursionError):
            return None
        return record if isinstance(record, dict) else None


class CallbackEntry(Record):
    """A registration (`/system/callbacks`), as ConnectWise serves it."""

    url: CWText = None
    object_id: CWWholeNumber = None
    type: CWText = None
    level: CWText = None
    description: CWText = None
    member_id: CWWholeNumber = None
    inactive_flag: CWFlag = None
    is_self_suppressed_flag: CWFlag = None


def parse_payload(body: bytes) -> CallbackPayload:
    """The delivery in `body`, or NotACallback saying which field is missing or wrong."""
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise NotACallback("the body is not JSON") from None
    if not isinstance(parsed, dict):
        raise NotACallback("the body is not a JSON object")
    try:
        return CallbackPayload.model_validate(parsed)
    except PydanticValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "body"
        raise NotACallback(f"field {field}: {error['msg'].lower()}") from None


def signature(signing_key: str, body: bytes) -> str:
    """The `x-content-signature` ConnectWise sends with `body`, signed with `signing_key`."""
    key = hashlib.sha256(signing_key.encode("utf-8")).digest()
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


def signature_matches(signing_key: str, body: bytes, presented: str) -> bool:
    """Whether `presented` is the signature of `body`, compared in constant time."""
    return hmac.compare_digest(
        signature(signing_key, body).encode("ascii"), presented.strip().encode("utf-8", "replace")
    )


def _host_port(host: str, port: int | None, scheme: str) -> tuple[str, int | None]:
    """A host and port as compared: the host in lower case, the scheme's default port as None."""
    return host.lower(), None if port == _DEFAULT_PORTS.get(scheme) else port


@dataclass(frozen=True)
class KeyHosts:
    """Where a tenant's signing keys may be fetched from: (host, port) pairs, port None for the default."""

    hosts: frozenset[tuple[str, int | None]]

    @classmethod
    def of_tenant(cls, *, base_url: str | None, site: str | None, extra: tuple[str, ...] = ()) -> KeyHosts:
        """The API host (of `base_url`, else `site`), `site`, and the `callback_key_hosts` of a tenant."""
        hosts: set[tuple[str, int | None]] = set()
        if base_url is not None:
            parts = urlsplit(base_url)
            if parts.hostname:
                hosts.add(_host_port(parts.hostname, parts.port, parts.scheme))
        for name in (site, *extra):
            if name:
                parts = urlsplit(f"//{name}")
                if parts.hostname:
                    hosts.add((parts.hostname.lower(), parts.port))
        return cls(frozenset(hosts))

    def refusal(self, url: str) -> str | None:
        """Why `url` may not be fetched (naming at most its host), or None when it may."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return "the key URL is not a URL"
        host = parts.hostname
        if not host or parts.username is not None or parts.password is not None:
            return "the key URL names no plain host"
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(host)):
            return f"the key URL on {host} is not https"
        if _host_port(host, port, parts.scheme) not in self.hosts:
            where = f"{host}:{port}" if port else host
            return (
                f"the key URL's host {where} is not the tenant's ConnectWise (its API host, site or callback_key_hosts)"
            )
        return None


class SigningKeys:
    """One tenant's signing keys, fetched from their key URLs (only where `hosts` allows) and kept per URL.

    Concurrent requests for one URL share one fetch; at most `fetches_per_minute` fetches a minute are made."""

    def __init__(
        self,
        hosts: KeyHosts,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        fetches_per_minute: int = KEY_FETCHES_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hosts = hosts
        self._transport = transport
        self._fetches_per_minute = fetches_per_minute
        self._clock = clock
        self._http: httpx2.AsyncClient | None = None
        self._keys: OrderedDict[str, str] = OrderedDict()
        self._fetching: dict[str, asyncio.Future[str]] = {}
        self._fetched_at: deque[float] = deque()
        self.fetches = 0  # made so far

    def __repr__(self) -> str:
        return f"SigningKeys(hosts={sorted(self.hosts.hosts, key=str)}, cached={len(self._keys)})"

    async def key(self, url: str, *, fresh: bool = False) -> tuple[str, bool]:
        """The signing key at `url` and whether it came from the cache; `fresh` fetches it again.
        Raises KeyUnavailable (without contacting anything when the URL is not allowed)."""
        refusal = self.hosts.refusal(url)
        if refusal is not None:
            raise KeyUnavailable(refusal)
        if not fresh and url in self._keys:
            self._keys.move_to_end(url)
            return self._keys[url], True
        fetching = self._fetching.get(url)
        if fetching is None:
            fetching = self._fetching[url] = asyncio.ensure_future(self._fetch(url))
            fetching.add_done_callback(lambda done: self._fetch_done(url, done))
        key = await asyncio.shield(fetching)
        return key, False

    def _fetch_done(self, url: str, done: asyncio.Future[str]) -> None:
        self._fetching.pop(url, None)
        if not done.cancelled():
            done.exception()  # retrieved, so that a failure its callers stopped waiting for is not logged

    async def _fetch(self, url: str) -> str:
        now = self._clock()
        while self._fetched_at and now - self._fetched_at[0] >= 60:
            self._fetched_at.popleft()
        if len(self._fetched_at) >= self._fetches_per_minute:
            raise KeyUnavailable(
                f"{self._fetches_per_minute} signing keys were fetched in the last minute, the most allowed",
                retry_after=60 - (now - self._fetched_at[0]),
            )
        self._fetched_at.append(now)
        self.fetches += 1
        host = urlsplit(url).hostname
        try:
            async with self._client().stream("GET", url) as response:
                if 300 <= response.status_code < 400:
                    raise KeyUnavailable(f"the key URL on {host} answered a redirect (HTTP {response.status_code})")
                if not response.is_success:
                    raise KeyUnavailable(
                        f"the key URL on {host} answered HTTP {response.status_code}",
                        temporary=response.status_code >= 500 or response.status_code == 429,
                    )
                answer = bytearray()
                async for chunk in response.aiter_bytes():
                    answer += chunk
                    if len(answer) > MAX_KEY_ANSWER_BYTES:
                        raise KeyUnavailable(f"the key URL on {host} answered over {MAX_KEY_ANSWER_BYTES} bytes")
        except httpx2.TimeoutException:
            raise KeyUnavailable(
                f"the key URL on {host} did not answer within {KEY_FETCH_TIMEOUT_SECONDS:g} s", temporary=True
            ) from None
        except httpx2.HTTPError as exc:  # `from None`: the error holds the request, and so the URL
            raise KeyUnavailable(
                f"the key URL on {host} could not be reached ({type(exc).__name__})", temporary=True
            ) from None
        try:
            signing_key = json.loads(answer).get("signing_key")
        except (ValueError, AttributeError):
            signing_key = None
        if not isinstance(signing_key, str) or not signing_key:
            raise KeyUnavailable(f"the key URL on {host} answered no signing_key")
        self._keys[url] = signing_key
        self._keys.move_to_end(url)
        while len(self._keys) > MAX_CACHED_KEYS:
            self._keys.popitem(last=False)
        return signing_key

    def _client(self) -> httpx2.AsyncClient:
        if self._http is None:
            self._http = httpx2.AsyncClient(
                transport=self._transport,
                follow_redirects=False,
                timeout=httpx2.Timeout(KEY_FETCH_TIMEOUT_SECONDS),
                headers={"Accept": "application/json"},
            )
        return self._http

    async def verify(self, payload: CallbackPayload, body: bytes, presented: str) -> bool:
        """Whether `presented` signs `body` with the key its key URL names: a mismatch with a cached key
        fetches the key once more (it may have been replaced). Raises KeyUnavailable."""
        key, cached = await self.key(payload.metadata.key_url)
        if signature_matches(key, body, presented):
            return True
        if not cached:
            return False
        key, _ = await self.key(payload.metadata.key_url, fresh=True)
        return signature_matches(key, body, presented)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
