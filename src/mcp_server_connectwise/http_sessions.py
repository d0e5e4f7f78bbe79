"""Per-principal limits on open MCP sessions over HTTP and SSE: how many, and how long one may sit idle.

`SessionLimits` wraps the SDK's app (`build_network_app` adds it):

- streamable HTTP: a session is what an `initialize` without `Mcp-Session-Id` opens on the handshake protocol
  revisions (up to 2025-11-25); 2026-07-28 requests are stateless and open none. A principal with
  `max_sessions` open sessions gets 429 and a JSON-RPC error saying so for a new one;
- SSE: a session is an open `GET /sse` stream, limited the same way;
- a session that no client message has reached for `idle_timeout` seconds is ended, even with a stream open:
  streamable HTTP sessions without a stream by the SDK's own `session_idle_timeout` (the same value), those
  with one here, by ending them the way the SDK ends an idle session; SSE streams by ending the stream.

The principal is the bearer token's, found as the SDK's own auth finds it; a request without a valid token
passes untouched (the SDK answers 401).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Literal

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from mcp.server.auth.provider import TokenVerifier
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import INVALID_REQUEST, ErrorData, JSONRPCError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers, QueryParams
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

SESSION_ID_HEADER = "mcp-session-id"
PROTOCOL_VERSION_HEADER = "mcp-protocol-version"
SSE_SESSION_ID = re.compile(rb"session_id=([0-9a-f]{32})")
DISCONNECT: Message = {"type": "http.disconnect"}


@dataclass
class _Session:
    principal: str
    last_message: float = field(default_factory=time.monotonic)
    in_flight: int = 0  # client requests being served for it

    def idle_for(self) -> float:
        return 0.0 if self.in_flight else time.monotonic() - self.last_message


class SessionLimits:
    """ASGI middleware: at most `max_sessions` open sessions per principal; idle ones ended after `idle_timeout`.

    `sessions` is the SDK's session manager (streamable HTTP only), asked which sessions are still open.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        transport: Literal["http", "sse"],
        path: str,
        verifier: TokenVerifier,
        max_sessions: int,
        idle_timeout: float,
        sessions: StreamableHTTPSessionManager | None = None,
        messages_path: str = "/messages/",
    ) -> None:
        if transport == "http" and sessions is None:
            raise ValueError("streamable HTTP needs the SDK's session manager")
        self.app = app
        self.transport = transport
        self.path = path
        self.messages_path = messages_path
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self._auth = BearerAuthBackend(verifier)
        self._manager = sessions
        self._sessions: dict[str, _Session] = {}  # by Mcp-Session-Id, or by SSE session_id
        self._opening: Counter[str] = Counter()  # per principal: streamable sessions being opened
        self._streams: Counter[str] = Counter()  # per principal: open SSE streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if self.transport == "http" and path == self.path:
                return await self._streamable(scope, receive, send)
            if self.transport == "sse" and path == self.path and method == "GET":
                return await self._sse_stream(scope, receive, send)
            if self.transport == "sse" and path.startswith(self.messages_path) and method == "POST":
                return await self._sse_message(scope, receive, send)
        await self.app(scope, receive, send)

    async def _principal(self, scope: Scope) -> str | None:
        authenticated = await self._auth.authenticate(HTTPConnection(scope))
        if authenticated is None or not isinstance(authenticated[1], AuthenticatedUser):
            return None
        return authenticated[1].access_token.client_id

    # --- streamable HTTP -----------------------------------------------------------------------------------

    async def _streamable(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        version = headers.get(PROTOCOL_VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return await self.app(scope, receive, send)  # 2026-07-28 and later: no sessions
        principal = await self._principal(scope)
        if principal is None:
            return await self.app(scope, receive, send)
        session_id = headers.get(SESSION_ID_HEADER)
        if session_id is None:
            if scope["method"] != "POST":  # only an initialize POST can open a session
                return await self.app(scope, receive, send)
            return await self._open_streamable(principal, scope, receive, send)
        session = self._sessions.get(session_id)
        if session is None or session.principal != principal:
            return await self.app(scope, receive, send)  # the SDK answers 404
        if scope["method"] == "GET":
            return await self._streamable_stream(session_id, session, scope, receive, send)
        session.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            session.in_flight -= 1
            session.last_message = time.monotonic()

    def _open_streamable_sessions(self, principal: str) -> int:
        live = self._live_session_ids()
        for session_id in [session_id for session_id in self._sessions if session_id not in live]:
            del self._sessions[session_id]
        return self._opening[principal] + sum(s.principal == principal for s in self._sessions.values())

    def _live_session_ids(self) -> Container[str]:
        # The SDK keeps its open sessions here, forgetting each as it ends (DELETE, idle, crash); there is no
        # public way to ask. tests/server/test_http_limits.py fails should that ever change.
        assert self._manager is not None
        return self._manager._server_instances

    async def _open_streamable(self, principal: str, scope: Scope, receive: Receive, send: Send) -> None:
        already = self._open_streamable_sessions(principal)
        if already >= self.max_sessions:
            return await self._refuse(principal, already, scope, receive, send)
        self._opening[principal] += 1
        settled = False

        def settle(session_id: str | None) -> None:
            nonlocal settled
            if not settled:
                settled = True
                self._opening[principal] -= 1
                if session_id is not None:
                    self._sessions[session_id] = _Session(principal)

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                opened = message["status"] < 400
                settle(Headers(raw=message.get("headers", [])).get(SESSION_ID_HEADER) if opened else None)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            settle(None)
            if not self._opening[principal]:
                del self._opening[principal]

    async def _streamable_stream(
        self, session_id: str, session: _Session, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """A GET stream holds a session open for the SDK; end the session once it is idle all the same."""

        def end_session() -> None:
            transport = self._manager._server_instances.get(session_id) if self._manager else None
            # Cancelling its idle scope is how the SDK itself ends an idle session (and logs it).
            if transport is not None and transport.idle_scope is not None:
                transport.idle_scope.cancel()

        with self._idle_watch(session, end_session):
            await self.app(scope, receive, send)

    # --- SSE -----------------------------------------------------------------------------------------------

    async def _sse_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = await self._principal(scope)
        if principal is None:
            return await self.app(scope, receive, send)
        if self._streams[principal] >= self.max_sessions:
            return await self._refuse(principal, self._streams[principal], scope, receive, send)
        self._streams[principal] += 1
        session = _Session(principal)
        session_id: str | None = None
        idle = anyio.Event()
        started = completed = False

        async def watch(message: Message) -> None:
            nonlocal session_id, started, completed
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if session_id is None and (found := SSE_SESSION_ID.search(body)):
                    session_id = found.group(1).decode("ascii")
                    self._sessions[session_id] = session
                elif b"event: message" in body:
                    session.last_message = time.monotonic()  # an answer or notification to the client
                completed = not message.get("more_body", False)
            await send(message)

        async def receive_until_idle() -> Message:
            message = DISCONNECT
            async with anyio.create_task_group() as race:

                async def from_client() -> None:
                    nonlocal message
                    message = await receive()
                    race.cancel_scope.cancel()

                async def until_idle() -> None:
                    await idle.wait()
                    race.cancel_scope.cancel()

                race.start_soon(from_client)
                race.start_soon(until_idle)
            return message

        def end_stream() -> None:
            logger.info(
                "ended the idle SSE session of principal %r: no message for %g s ([http] session_idle_timeout_seconds)",
                principal,
                self.idle_timeout,
            )
            idle.set()  # the stream sees its client go, and ends as it would then

        try:
            with self._idle_watch(session, end_stream):
                await self.app(scope, receive_until_idle, watch)
            if started and not completed and idle.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self._streams[principal] -= 1
            if not self._streams[principal]:
                del self._streams[principal]
            if session_id is not None:
                self._sessions.pop(session_id, None)

    async def _sse_message(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = self._sessions.get(QueryParams(scope.get("query_string", b"")).get("session_id") or "")
        if session is None or session.principal != await self._principal(scope):
            return await self.app(scope, receive, send)  # the SDK answers 401 or 404
        session.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            session.in_flight -= 1
            session.last_message = time.monotonic()

    # --- shared --------------------------------------------------------------------------------------------

    def _idle_watch(self, session: _Session, on_idle: Callable[[], None]) -> _IdleWatch:
        return _IdleWatch(session, self.idle_timeout, on_idle)

    async def _refuse(self, principal: str, already: int, scope: Scope, receive: Receive, send: Send) -> None:
        logger.warning(
            "refused a new MCP session for principal %r: %d open, the most [http] max_sessions_per_principal allows",
            principal,
            already,
        )
        message = (
            f"Too many open MCP sessions: principal '{principal}' has {already}, the most this server allows "
            f"([http] max_sessions_per_principal = {self.max_sessions}). End one (HTTP DELETE with its "
            f"Mcp-Session-Id, or close its SSE stream) or wait: a session expires after {self.idle_timeout:g} s "
            "without a message."
        )
        body = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=INVALID_REQUEST, message=message))
        response = Response(
            body.model_dump_json(by_alias=True, exclude_unset=True),
            status_code=429,
            media_type="application/json",
            headers={"Retry-After": str(max(1, round(self.idle_timeout)))},
        )
        await response(scope, receive, send)


class _IdleWatch:
    """While entered, calls `on_idle` (once) when `session` has gone `timeout` seconds without a client message."""

    def __init__(self, session: _Session, timeout: float, on_idle: Callable[[], None]) -> None:
        self._session, self._timeout, self._on_idle = session, timeout, on_idle
        self._timer: asyncio.TimerHandle | None = None

    def __enter__(self) -> _IdleWatch:
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(self._timeout, self._check)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        idle_for = self._session.idle_for()
        if idle_for >= self._timeout:
            self._timer = None
            self._on_idle()
            return
        self._timer = self._loop.call_later(self._timeout - idle_for, self._check)
