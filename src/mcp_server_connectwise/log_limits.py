"""Keeping the network server's log readable and bounded under abuse: logging filters that `serve` and `demo`
put on the log handlers while they listen (`install_log_limits`).

- `ClientDisconnectFilter` drops the traceback the SDK or uvicorn logs when a client goes away mid-request
  (starlette's `ClientDisconnect`): the connection guard (`http_guard`) logs that as one line.
- `RepeatedLineLimiter` lets through the first `burst` warnings and errors of a kind per `interval` seconds
  (a kind: the same logger, level, message template and exception type, e.g. every "too many open files"),
  then counts the rest and writes one summary line per kind and interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_server_connectwise.config import HttpConfig

MAX_KINDS = 512  # kinds of line tracked at once; the longest-unseen is forgotten first
_SUMMARY = "_repeated_line_summary"  # marks our own summary records, which always pass


def _is_client_disconnect(exc: BaseException | None) -> bool:
    from starlette.requests import ClientDisconnect

    if isinstance(exc, BaseExceptionGroup):
        return all(_is_client_disconnect(inner) for inner in exc.exceptions)
    return isinstance(exc, ClientDisconnect)


class ClientDisconnectFilter(logging.Filter):
    """Drops records whose exception is only a client having disconnected."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _is_client_disconnect(record.exc_info[1]))


@dataclass
class _Window:
    started: float
    example: str
    passed: int = 0
    suppressed: int = 0


class RepeatedLineLimiter(logging.Filter):
    """At most `burst` records of a kind per `interval` seconds reach `handler`; then one summary per interval.

    A summary is written when the next record (of any kind) reaches the handler after its interval, and by
    `flush()`; it names the kind by its first line and says how many were not written.
    """

    def __init__(
        self,
        handler: logging.Handler,
        *,
        burst: int,
        interval: float,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._handler, self._burst, self._interval, self._level, self._clock = handler, burst, interval, level, clock
        self._windows: OrderedDict[tuple[str, int, str, str], _Window] = OrderedDict()
        self._next_summary = float("inf")
        self._lock = threading.Lock()  # sync tools log from worker threads

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY, False):
            return True
        now = self._clock()
        due = self._take_due_summaries(now) if now >= self._next_summary else []
        for summary in due:
            self._handler.handle(summary)
        if record.levelno < self._level:
            return True
        exc_type = type(record.exc_info[1]).__name__ if record.exc_info and record.exc_info[1] else ""
        key = (record.name, record.levelno, str(record.msg), exc_type)
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window.started >= self._interval:
                if window is not None and window.suppressed:  # its summary was not due before this moment
                    self._handler.handle(self._summary(key, window, now))
                window = self._windows[key] = _Window(started=now, example=_first_line(record))
                while len(self._windows) > MAX_KINDS:
                    self._windows.popitem(last=False)
            self._windows.move_to_end(key)
            if window.passed < self._burst:
                window.passed += 1
                return True
            if not window.suppressed:
                self._next_summary = min(self._next_summary, window.started + self._interval)
            window.suppressed += 1
            return False

    def flush(self) -> None:
        """Write the summary of every kind with lines not written yet."""
        for summary in self._take_due_summaries(float("inf")):
            self._handler.handle(summary)

    def _take_due_summaries(self, now: float) -> list[logging.LogRecord]:
        summaries = []
        with self._lock:
            self._next_summary = float("inf")
            for key, window in list(self._windows.items()):
                if not window.suppressed:
                    continue
                if now == float("inf") or now - window.started >= self._interval:
                    summaries.append(self._summary(key, window, min(now, self._clock())))
                    del self._windows[key]
                else:
                    self._next_summary = min(self._next_summary, window.started + self._interval)
        return summaries

    def _summary(self, key: tuple[str, int, str, str], window: _Window, now: float) -> logging.LogRecord:
        name, level, _, _ = key
        record = logging.LogRecord(
            name,
            level,
            __file__,
            0,
            "%d more lines like this in the last %.0f s were not logged: %s",
            (window.suppressed, max(now - window.started, 0), window.example),
            None,
        )
        setattr(record, _SUMMARY, True)
        window.suppressed = 0
        return record


def _first_line(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception:  # a record whose arguments do not fit its message: its template, then
        message = str(record.msg)
    return message.splitlines()[0][:200] if message else ""


class LogLimits:
    """The filters `install_log_limits` put on handlers: `flush()` the summaries, `remove()` them again."""

    def __init__(self, installed: list[tuple[logging.Handler, list[logging.Filter]]]) -> None:
        self._installed = installed

    def flush(self) -> None:
        for _handler, filters in self._installed:
            for item in filters:
                if isinstance(item, RepeatedLineLimiter):
                    item.flush()

    def remove(self) -> None:
        self.flush()
        for handler, filters in self._installed:
            for item in filters:
                handler.removeFilter(item)
        self._installed = []


def install_log_limits(http: HttpConfig, handlers: Iterable[logging.Handler] | None = None) -> LogLimits:
    """Put both filters on each of `handlers` (default: the root logger's), with [http]'s repeat limit."""
    installed = []
    for handler in list(logging.getLogger().handlers if handlers is None else handlers):
        filters: list[logging.Filter] = [
            ClientDisconnectFilter(),
            RepeatedLineLimiter(handler, burst=http.log_repeat_burst, interval=http.log_repeat_interval_seconds),
        ]
        for item in filters:
            handler.addFilter(item)
        installed.append((handler, filters))
    return LogLimits(installed)
