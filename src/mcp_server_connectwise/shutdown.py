"""Graceful shutdown: on SIGTERM or SIGINT (a restart, Ctrl-C) and on stdin EOF, calls in flight finish and are
answered before the process exits, so a client never sees "connection closed" for a write that was done (and
sends it again).

stdio (`serve_stdio`, what `serve` and `demo` run instead of the SDK's `server.run()`): the same transport as the
SDK's `stdio_server` - fd 0 and fd 1 are claimed the same way, one JSON-RPC message a line - with a relay between
it and the server that knows which requests are unanswered. On a signal:

- nothing new is run: a request read after the signal is answered at once with a JSON-RPC error
  (`SHUTTING_DOWN`, code -32000) saying it was not run and may be sent again to the restarted server; responses
  and notifications (a cancellation) still reach the server;
- the calls in flight finish, within `grace` seconds (the call deadline plus GRACE_MARGIN_SECONDS), and their
  answers are written;
- then the server sees end of input and stops as on EOF, and the process exits 0. A call still running after
  `grace` (or at a second signal) is stopped and answered "Connection closed" by the SDK.

stdin EOF is the same without the refusals: the client has gone quiet, its calls in flight are answered first.
The SDK's own loop instead cancels the handlers at EOF, and its stdin reader thread cannot be stopped, which is
why a signal could not end it while stdin stayed open; here stdin is read by a daemon thread.

HTTP and SSE (`cli.serve.listen`): uvicorn's graceful shutdown, with `timeout_graceful_shutdown` = `grace`. On a
signal it stops listening (a new connection is refused: nothing new is run) and closes idle connections; then
it waits for the POSTs in flight (`RequestsInFlight`) - each a call on streamable HTTP, answered on its own
response - and only then ends the event streams still open (legacy GET streams, SSE), which sse-starlette would
otherwise end at once, cutting off the streamed answer of a call in flight (`event_streams_held`). The process
then exits 0 rather than re-raising the signal. On the SSE transport the answers travel on the GET stream, not
on the POST, so a call in flight there is still cut off: it is deprecated, use streamable HTTP.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.from_thread
import mcp_types as types
from anyio.streams.memory import MemoryObjectSendStream
from mcp.shared.message import SessionMessage

if TYPE_CHECKING:
    from mcp.server import MCPServer
    from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

# Past the call deadline (and the runtime's backstop of 1 s), time to write the audit line and the answer.
GRACE_MARGIN_SECONDS = 5.0
SHUTTING_DOWN = types.CONNECTION_CLOSED
SHUTTING_DOWN_MESSAGE = (
    "The server is shutting down: this request was not run. Send it again once the server has restarted."
)
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def grace_seconds(call_deadline: float) -> float:
    """How long a shutdown waits for the calls in flight: the call deadline plus GRACE_MARGIN_SECONDS."""
    return call_deadline + GRACE_MARGIN_SECONDS


def run_stdio(server: MCPServer, *, grace: float) -> None:
    """`server.run()` (stdio), with the graceful shutdown of this module. Where signals cannot be received in
    the event loop (Windows, or not the main thread), or stdin and stdout are not the process's descriptors 0
    and 1 (an embedding that replaced them), it is `server.run()`."""
    if (
        sys.platform == "win32"
        or threading.current_thread() is not threading.main_thread()
        or not (_is_fd(sys.stdin, 0) and _is_fd(sys.stdout, 1))
    ):
        server.run()
        return
    anyio.run(serve_stdio, server, grace)


def _is_fd(stream: IO[str] | None, fd: int) -> bool:
    try:
        return stream is not None and stream.fileno() == fd
    except (AttributeError, OSError, ValueError):
        return False


async def serve_stdio(server: MCPServer, grace: float, *, signals: tuple[signal.Signals, ...] = SIGNALS) -> None:
    # The SDK's claim of fd 0 and fd 1: the wire moves to private descriptors, fd 0 reads the null device and fd 1
    # writes to stderr, so stray output misses the wire; both are restored on exit.
    from mcp.server.stdio import _claim_fd, _open_stdin_diversion, _open_stdout_diversion

    stdin, release_stdin = _claim_fd(0, sys.stdin, "rb", _open_stdin_diversion)
    try:
        stdout, release_stdout = _claim_fd(1, sys.stdout, "wb", _open_stdout_diversion)
        try:
            await _Relay(server, stdin, stdout, grace, signals).run()
        finally:
            if release_stdout is not None:
                release_stdout()
    finally:
        if release_stdin is not None:
            release_stdin()


class _Relay:
    """Between the stdio wire and the server: the requests read and not yet answered, and when to stop."""

    def __init__(
        self, server: MCPServer, stdin: IO[bytes], stdout: IO[bytes], grace: float, signals: tuple[signal.Signals, ...]
    ) -> None:
        self.server = server
        self.stdin = stdin
        self.stdout = anyio.wrap_file(stdout)
        self.grace = grace
        self.signals = signals
        self.unanswered: set[types.RequestId] = set()
        self._answered = anyio.Event()
        self._written = anyio.Event()  # the writer has ended
        self.stop = anyio.Event()  # EOF or a signal: run nothing new
        self.hurry = anyio.Event()  # a second signal: stop waiting for the calls in flight
        self.signalled: str | None = None
        self.closed = False  # the server has seen end of input

    async def run(self) -> None:
        lines_in, lines = anyio.create_memory_object_stream[str | None](16)
        self.to_server, server_in = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        server_out, self.from_server = anyio.create_memory_object_stream[SessionMessage](0)
        self.refusals = server_out.clone()
        lowlevel = self.server._lowlevel_server
        threading.Thread(
            target=_read_lines, args=(self.stdin, lines_in, anyio.lowlevel.current_token()), daemon=True
        ).start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read, lines)
            tg.start_soon(self._watch_signals)
            tg.start_soon(self._write)
            async with anyio.create_task_group() as serving:
                serving.start_soon(lowlevel.run, server_in, server_out, lowlevel.create_initialization_options())
                await self.stop.wait()
                await self._drain()
                self.closed = True
                await self.to_server.aclose()  # end of input: the server stops
            await self.refusals.aclose()  # then the writer ends, once everything is written
            await self._written.wait()
            tg.cancel_scope.cancel()  # the reader and the signal watcher

    async def _drain(self) -> None:
        if not self.unanswered:
            return
        count = len(self.unanswered)
        logger.info(
            "%s: finishing %d request(s) in flight (up to %g s) before exiting",
            self.signalled or "end of input",
            count,
            self.grace,
        )
        with anyio.move_on_after(self.grace):
            async with anyio.create_task_group() as waiting:
                waiting.start_soon(self._settled, waiting.cancel_scope)
                await self.hurry.wait()
                waiting.cancel_scope.cancel()
        if self.unanswered:
            logger.warning(
                "%d request(s) still running %s: stopped, answered 'Connection closed'",
                len(self.unanswered),
                "at a second signal" if self.hurry.is_set() else f"after {self.grace:g} s",
            )

    async def _settled(self, scope: anyio.CancelScope) -> None:
        while self.unanswered:
            await self._answered.wait()
        scope.cancel()

    async def _read(self, lines: anyio.abc.ObjectReceiveStream[str | None]) -> None:
        async with lines:
            async for line in lines:
                if line is None:  # EOF
                    self.stop.set()
                    return
                try:
                    item: SessionMessage | Exception = SessionMessage(
                        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                    )
                except Exception as exc:  # as the SDK: the server is told of a line it could not parse
                    item = exc
                await self._forward(item)

    async def _forward(self, item: SessionMessage | Exception) -> None:
        message = item.message if isinstance(item, SessionMessage) else None
        if isinstance(message, types.JSONRPCRequest) and self.stop.is_set():
            error = types.ErrorData(code=SHUTTING_DOWN, message=SHUTTING_DOWN_MESSAGE)
            refusal = types.JSONRPCError(jsonrpc="2.0", id=message.id, error=error)
            logger.info("refused request %r (%s): the server is shutting down", message.id, message.method)
            try:
                await self.refusals.send(SessionMessage(refusal))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
            return
        if self.closed:
            return  # the server has stopped reading: a late response or notification goes nowhere
        if isinstance(message, types.JSONRPCRequest):
            self.unanswered.add(message.id)
        elif isinstance(message, types.JSONRPCNotification) and message.method == "notifications/cancelled":
            # A request the client cancelled is not answered: stop waiting for it.
            self._settle((message.params or {}).get("requestId"))
        try:
            await self.to_server.send(item)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def _write(self) -> None:
        try:
            async with self.from_server:
                async for session_message in self.from_server:
                    message = session_message.message
                    data = message.model_dump_json(by_alias=True, exclude_unset=True)
                    await self.stdout.write((data + "\n").encode())
                    await self.stdout.flush()
                    if isinstance(message, types.JSONRPCResponse | types.JSONRPCError):
                        self._settle(message.id)  # only once its answer is written
        finally:
            self._written.set()

    def _settle(self, request_id: Any) -> None:
        if request_id in self.unanswered:
            self.unanswered.discard(request_id)
            self._answered.set()
            self._answered = anyio.Event()

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(*self.signals) as received:
            async for signum in received:
                if self.stop.is_set() and self.signalled:
                    logger.warning("%s again: stopping the requests in flight", signal.Signals(signum).name)
                    self.hurry.set()
                    continue
                self.signalled = signal.Signals(signum).name
                logger.info("%s: taking no new requests", self.signalled)
                self.stop.set()


def _read_lines(
    stdin: IO[bytes], lines: MemoryObjectSendStream[str | None], token: anyio.lowlevel.EventLoopToken
) -> None:
    """In a daemon thread (a blocked read must not hold up the exit): each line of stdin, then None at EOF."""
    deliver: Callable[[str | None], Any] = lambda line: anyio.from_thread.run(lines.send, line, token=token)  # noqa: E731
    try:
        for raw in stdin:
            deliver(raw.decode("utf-8", errors="replace"))
        deliver(None)
    except Exception:  # the loop has finished, or the relay stopped reading: nothing more to deliver
        return


# --- HTTP and SSE -----------------------------------------------------------------------------------------------


class RequestsInFlight:
    """ASGI middleware counting the HTTP requests in progress other than GETs: on streamable HTTP, a POST is
    one JSON-RPC message and stays open until it is answered (a GET is an event stream that may never end)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0
        self._changed = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "GET":
            await self.app(scope, receive, send)
            return
        self.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1
            self._changed.set()
            self._changed = anyio.Event()

    async def settled(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for no request to be in flight: were they all answered?"""
        with anyio.move_on_after(timeout):
            while self.count:
                await self._changed.wait()
        return not self.count


@contextlib.contextmanager
def event_streams_held() -> Iterator[None]:
    """sse-starlette ends every event stream (an SSE response) the moment uvicorn is told to exit, and so cuts off
    the streamed answer of a call in flight ("connection closed" for a write that was done). While this holds,
    streams end only when `end_event_streams` says so."""
    from sse_starlette.sse import AppStatus

    AppStatus.disable_automatic_graceful_drain()
    try:
        yield
    finally:
        AppStatus.enable_automatic_graceful_drain_mode()
        AppStatus.should_exit = False  # process-wide: a later server in this process starts afresh


def end_event_streams() -> None:
    from sse_starlette.sse import AppStatus

    AppStatus.should_exit = True
