"""The connection limits uvicorn lacks, as its h11 protocol with three additions (`[http]` in the config):

- a request head must arrive within `header_timeout_seconds` of the connection (or of the previous response on
  a kept-alive one), and its body within `body_timeout_seconds` of the head; else the connection is closed.
  uvicorn has neither: a client sending a byte a second holds its connection, and a file descriptor, forever;
- at most `max_connections` connections are open. At the cap, a new connection takes the place of the one
  that has waited longest (over EVICT_AFTER seconds) for its request head, so slow clients cannot crowd out
  real ones; when every connection is busy with a request, the new one is answered 503 at once and closed,
  before any of its bytes are read. The cap is lowered to fit the process's open-file limit, so that
  accepting never fails with "too many open files";
- a client that goes away before its response is complete is one log line (the SDK's traceback for it is
  dropped by `log_limits.ClientDisconnectFilter`).

`uvicorn_config` builds the uvicorn.Config that `serve` and `demo` run, with this protocol.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import get_remote_addr

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

    from mcp_server_connectwise.config import HttpConfig

logger = logging.getLogger(__name__)

# A refused connection is half-closed and read (and discarded) this long before it is closed, so the client
# reads the 503 instead of a reset; at most MAX_LINGERING of them at a time, beyond that they are closed at once.
LINGER_SECONDS = 1.0
MAX_LINGERING = 16
# At the cap, a connection that has waited this long for its request head may be closed to admit a new one.
# A real client sends its head at once; this spares one whose head is merely on its way.
EVICT_AFTER = 0.5
# The listen backlog is also how many connections asyncio accepts in one go, each a file descriptor before this
# protocol sees it (and can refuse it) a few loop iterations later: under a tight open-file limit it is kept
# small, down to MIN_BACKLOG (uvicorn's default, DEFAULT_BACKLOG, otherwise).
DEFAULT_BACKLOG = 2048
MIN_BACKLOG = 16
# File descriptors the process needs besides connections: the listening socket, the event loop, the audit log,
# the tenants' connections to ConnectWise; and room for lingering refusals.
FD_RESERVE = 32 + MAX_LINGERING
_REFUSAL_TEXT = b"Too many open connections; try again shortly.\n"
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nretry-after: 5\r\nconnection: close\r\n\r\n%s" % (len(_REFUSAL_TEXT), _REFUSAL_TEXT)
)


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int


def fit_to_file_limit(max_connections: int) -> tuple[int, int]:
    """(max_connections, backlog) that fit the process's open-file limit: connections, the backlog's accepted
    but not yet refused ones (up to 4 batches), and FD_RESERVE. max_connections is lowered only when even the
    smallest backlog leaves no room for it."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to fit
        return max_connections, DEFAULT_BACKLOG
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections, DEFAULT_BACKLOG
    backlog = min(DEFAULT_BACKLOG, max(MIN_BACKLOG, (soft - FD_RESERVE - max_connections) // 4))
    room = soft - FD_RESERVE - 4 * backlog
    if max_connections <= room:
        return max_connections, backlog
    lowered = max(1, room)
    logger.warning(
        "[http] max_connections = %d lowered to %d: this process may open only %d files (ulimit -n)",
        max_connections,
        lowered,
        soft,
    )
    return lowered, backlog


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with head and body deadlines, a connection cap and one line per disconnect.

    Use `guarded_protocol(limits)`, which makes the subclass that carries the limits.
    """

    limits: ClassVar[ConnectionLimits]
    lingering: ClassVar[set[GuardedH11Protocol]]
    # Connections waiting for a request head, oldest first, with the (loop) time they began to wait.
    waiting: ClassVar[dict[GuardedH11Protocol, float]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._cut_off = False  # closed by a deadline here: not a client's disconnect
        self._answered = False  # a response has been sent on this connection
        self._head_bytes = 0  # received since it began to wait for a head

    # --- the connection cap --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections and not self._make_room():
            self._refuse(transport)
            return
        super().connection_made(transport)
        self._await_head()

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for a head, if it has waited EVICT_AFTER: was there one?"""
        now = self.loop.time()
        for oldest, since in list(self.waiting.items()):
            if oldest.transport.is_closing():
                del self.waiting[oldest]
                continue
            if now - since < EVICT_AFTER:
                return False
            logger.warning(
                "closed the connection from %s to admit another: [http] max_connections are open and it sent no "
                "complete request head in %.1f s",
                _address(oldest.client),
                now - since,
            )
            oldest._cut_off = True
            oldest._stop_waiting()
            self.connections.discard(oldest)
            oldest.transport.close()
            return True
        return False

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._refused = True
        self.transport = transport
        logger.warning(
            "refused a connection from %s: %d connections are open, the most [http] max_connections allows",
            _address(get_remote_addr(transport)),
            len(self.connections),
        )
        transport.write(REFUSAL)
        if len(self.lingering) >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.lingering.add(self)
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped: see LINGER_SECONDS
        if self._head_timer is not None:
            self._head_bytes += len(data)
        super().data_received(data)

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()
            return
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            self.lingering.discard(self)
            _cancel(self._linger_timer)
            return
        self._stop_waiting()
        _cancel(self._body_timer)
        self._body_timer = None
        if self.cycle is not None and not self.cycle.response_complete and not self._cut_off:
            logger.info(
                '%s - "%s %s" client disconnected before the response was complete',
                _address(self.client),
                self.scope["method"],
                _path(self.scope),
            )
        super().connection_lost(exc)

    # --- the head and body deadlines -----------------------------------------------------------------------

    def handle_events(self) -> None:
        super().handle_events()
        self._follow_the_request()

    def on_response_complete(self) -> None:
        self._answered = True
        super().on_response_complete()
        # The next request on a kept-alive connection has the same time for its head as the first had.
        if self._head_timer is None and not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_head()

    def _await_head(self) -> None:
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_overdue)
        self.waiting[self] = self.loop.time()

    def _stop_waiting(self) -> None:
        _cancel(self._head_timer)
        self._head_timer = None
        self.waiting.pop(self, None)

    def _follow_the_request(self) -> None:
        """Stop the head deadline once the head is in; run the body deadline while the body is coming."""
        state = self.conn.their_state
        if state is h11.IDLE:
            return
        self._stop_waiting()
        if state is h11.SEND_BODY:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_overdue)
        else:
            _cancel(self._body_timer)
            self._body_timer = None

    def _head_overdue(self) -> None:
        self._stop_waiting()
        if self.transport.is_closing():
            return
        self._cut_off = True
        if self._answered and not self._head_bytes:  # merely kept alive, and not used again: close it quietly
            self.transport.close()
            return
        logger.warning(
            "closed the connection from %s: no complete request head within %g s ([http] header_timeout_seconds)",
            _address(self.client),
            self.limits.header_timeout,
        )
        self.transport.close()

    def _body_overdue(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        logger.warning(
            '%s - "%s %s" closed: the request body did not arrive within %g s ([http] body_timeout_seconds)',
            _address(self.client),
            self.scope["method"],
            _path(self.scope),
            self.limits.body_timeout,
        )
        self._cut_off = True
        self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class for uvicorn.Config(http=...), with `limits`."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits, "lingering": set(), "waiting": {}})


def uvicorn_config(app: ASGIApp, host: str, port: int, http: HttpConfig) -> uvicorn.Config:
    """What `serve` and `demo` run: `app` on host:port, with the limits of `http`."""
    import uvicorn

    max_connections, backlog = fit_to_file_limit(http.max_connections)
    limits = ConnectionLimits(
        header_timeout=http.header_timeout_seconds,
        body_timeout=http.body_timeout_seconds,
        max_connections=max_connections,
    )
    # log_config=None: uvicorn's lines go through our (stderr) logging rather than its own stdout handler.
    # ws="none": MCP has no WebSocket transport, so no upgrade is ever handed to another protocol.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level="info",
        http=guarded_protocol(limits),
        ws="none",
        backlog=backlog,
    )


def _cancel(timer: asyncio.TimerHandle | None) -> None:
    if timer is not None:
        timer.cancel()


def _address(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "an unknown client"


def _path(scope: Any) -> str:
    # The raw path: h11 has checked it is printable ASCII, where the decoded one could hold a newline.
    return bytes(scope.get("raw_path") or b"").decode("ascii", "replace")[:200]
