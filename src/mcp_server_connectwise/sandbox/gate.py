"""What every request passes before a route: the request log, latency, rate limit, faults and Basic auth.

A raw ASGI middleware, kept small because it is on the benchmarks' hot path.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server_connectwise.sandbox.errors import ApiError, bad_request, not_authenticated
from mcp_server_connectwise.sandbox.faults import DroppedConnection, FaultInjector, rate_limited, server_error
from mcp_server_connectwise.sandbox.settings import API_MEMBER_IDENTIFIER, API_ROOT, SandboxSettings
from mcp_server_connectwise.sandbox.store import Store

logger = logging.getLogger(__name__)
_API_PREFIX = API_ROOT + "/"
_CONTENT_TYPE = (b"content-type", b"application/json; charset=utf-8")
_VERSION = (b"api-current-version", b"2025.1")


def json_bytes(body: Any) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate a client sent (`"\ud800"`): written back escaped, as .NET does
        return json.dumps(body, separators=(",", ":")).encode("ascii")


async def send_error(send: Send, error: ApiError) -> None:
    payload = json_bytes(error.body)
    headers = [_CONTENT_TYPE, _VERSION, (b"content-length", str(len(payload)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class RequestLog(list):
    """`app.state.request_log`: a list (tests index, slice and compare it) that keeps at most `limit` entries.

    Past the limit it drops its oldest entries a chunk at a time, so an append stays cheap on the hot path."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"request_log_limit must be at least 1, not {limit}")
        super().__init__()
        self.limit = limit
        self._keep = max(1, limit - max(1, limit // 16))  # what is left after a trim (never the newest lost)

    def append(self, entry: dict[str, Any]) -> None:
        super().append(entry)
        self._trim()

    def extend(self, entries: Iterable[dict[str, Any]]) -> None:
        super().extend(entries)
        self._trim()

    def __iadd__(self, entries: Iterable[dict[str, Any]]) -> RequestLog:  # type: ignore[override, misc]  # mypy#9279: an __iadd__ never fits list.__add__ (typeshed ignores it too)
        self.extend(entries)
        return self

    def _trim(self) -> None:
        if len(self) > self.limit:
            del self[: len(self) - self._keep]


class SandboxGate:
    """Logs each request to `app.state.request_log` and answers auth, 429 and injected faults itself.

    Routes find the parsed JSON body in `scope["sandbox.json"]` and the acting member identifier in
    `scope["sandbox.actor"]`."""

    def __init__(
        self,
        app: ASGIApp,
        settings: SandboxSettings,
        store: Store,
        faults: FaultInjector,
        request_log: list[dict[str, Any]],
        path_segments: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.settings = settings
        self.store = store
        self.faults = faults
        self.request_log = request_log
        self._company = settings.company.casefold()
        # The spelling of every fixed path segment the routes know, by its lower case.
        self._spelling = {segment.lower(): segment for segment in path_segments}
        self._segments: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        path = scope["path"]
        if path.startswith(_API_PREFIX):
            path = scope["path"] = self._canonical_path(path)
        api_path = path[len(API_ROOT) :] if path.startswith(_API_PREFIX) else path
        headers = dict(scope["headers"])
        principal, private_key = _basic_credentials(headers.get(b"authorization"))
        client_id = headers.get(b"clientid")
        entry: dict[str, Any] = {
            "method": scope["method"],
            "path": api_path,
            "query": dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)),
            "json": None,
            "principal": principal,
            "client_id": client_id.decode("latin-1") if client_id else None,
            "status": None,
            "fault": None,
        }
        self.request_log.append(entry)
        scope["sandbox.json"] = None
        if body.strip() and scope["method"] in _BODY_METHODS:
            entry["json"] = scope["sandbox.json"] = _parse_json(body)
            if entry["json"] is _INVALID_JSON:
                entry["json"] = None

        if self.faults.latency_ms > 0:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        retry_after = self.faults.retry_after()
        if retry_after is not None:
            entry["status"] = 429
            await send_error(send, rate_limited(retry_after))
            return
        fault = self.faults.pick()
        entry["fault"] = fault
        if fault in ("error_500", "error_503"):
            entry["status"] = 500 if fault == "error_500" else 503
            await send_error(send, server_error(entry["status"]))
            return
        if fault == "drop_before":
            await _drop(send, None)

        api_call = path.startswith(_API_PREFIX)
        if api_call:
            actor = self._authenticate(principal, private_key)
            if actor is None:
                entry["status"] = 401
                await send_error(send, not_authenticated())
                return
            scope["sandbox.actor"] = actor
            if scope["sandbox.json"] is _INVALID_JSON:
                entry["status"] = 400
                await send_error(send, bad_request("The request body is not valid JSON."))
                return

        buffered: list[Message] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                headers = message.get("headers", ())
                if api_call and not any(name == _VERSION[0] for name, _value in headers):
                    message["headers"] = [*headers, _VERSION]
            if fault == "drop_after_commit":
                buffered.append(message)
            else:
                await send(message)

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            await self.app(scope, replay, capture)
        except ApiError as error:  # raised outside any route, e.g. by a convertor
            entry["status"] = error.status
            await send_error(capture, error)
        except Exception as exc:  # a sandbox bug: answer as ConnectWise's unhandled-exception 500 does
            logger.exception("sandbox request failed: %s %s", scope["method"], path)
            entry["status"] = 500
            await send_error(capture, ApiError(500, {"code": "ConnectWiseApi", "message": str(exc), "errors": None}))
        if fault == "drop_after_commit":
            await _drop(send, buffered[0] if buffered else None)

    def _canonical_path(self, path: str) -> str:
        """[I] ASP.NET routing ignores the case of the path's fixed segments and a trailing slash:
        `/Service/Tickets/` is `/service/tickets`."""
        canonical = self._segments.get(path)
        if canonical is None:
            segments = path.rstrip("/").split("/") if len(path) > len(_API_PREFIX) else path.split("/")
            canonical = "/".join(self._spelling.get(segment.lower(), segment) for segment in segments)
            if len(self._segments) < 4096:  # a small cache of the paths seen: this is the hot path
                self._segments[path] = canonical
        return canonical

    def _authenticate(self, principal: str | None, private_key: str | None) -> str | None:
        """The member identifier the credentials act as, or None."""
        if principal is None or "+" not in principal:
            return None
        company, public_key = principal.split("+", 1)
        if company.casefold() != self._company:
            return None
        if public_key == self.settings.public_key and private_key == self.settings.private_key:
            return API_MEMBER_IDENTIFIER
        token = self.store.tokens.get(public_key)
        if token is not None and token.private_key == private_key and token.expires > time.time():
            return token.member
        return None


_INVALID_JSON = object()
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))  # [I] a GET's or DELETE's body is ignored, as IIS does


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(body: bytes) -> Any:
    """The body as JSON, or _INVALID_JSON. Like .NET's reader: a UTF-8 byte order mark is allowed; NaN and
    Infinity are not JSON; nesting deeper than its limit is refused rather than crashing."""
    try:
        return json.loads(body.removeprefix(b"\xef\xbb\xbf"), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return _INVALID_JSON


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _basic_credentials(header: bytes | None) -> tuple[str | None, str | None]:
    """("company+publicKey", privateKey) from a Basic Authorization header; the log only ever keeps the first."""
    if not header or not header[:6].lower() == b"basic ":
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else (username, None)


async def _drop(send: Send, start: Message | None) -> None:
    """Start a response and break off: under uvicorn the connection closes mid-response."""
    await send(
        start
        or {"type": "http.response.start", "status": 200, "headers": [_CONTENT_TYPE, (b"content-length", b"1024")]}
    )
    raise DroppedConnection()
