"""A misbehaving network for tests: a loopback HTTP proxy in front of a sandbox served by uvicorn.

`proxied_sandbox(settings, choose)` serves a sandbox on 127.0.0.1 over a real socket and puts a proxy in front
of it. For each request the proxy asks `choose(request)` what to do with it (one of ACTIONS):

- "pass": forward it and relay the answer, whatever it is (the sandbox's own faults included);
- "drop_after_commit": forward it, read the sandbox's whole answer (a write is saved by then), then close the
  client's connection without sending a byte: the answer is lost on the way back;
- "reset_before": close the client's connection without forwarding: the request went nowhere;
- "bad_gateway": answer 502 with a text body, as a load balancer does, without forwarding;
- "rate_limited": answer ConnectWise's 429 with `Retry-After: RETRY_AFTER_SECONDS`, without forwarding.

Every request is logged with the time it arrived and what was done with it. The proxy speaks just enough
HTTP/1.1 for our client: one request per connection, bodies by Content-Length.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette

from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.faults import DroppedConnection
from mcp_server_connectwise.sandbox.settings import API_ROOT

ACTIONS = ("pass", "drop_after_commit", "reset_before", "bad_gateway", "rate_limited")
RETRY_AFTER_SECONDS = 1
LOOPBACK = "127.0.0.1"


@dataclass
class ProxiedRequest:
    method: str
    target: str  # path and query, as sent
    body: bytes
    arrived: float  # time.monotonic()
    action: str = "pass"

    @property
    def key(self) -> tuple[str, str, bytes]:
        """What a re-send of the same request has in common with it."""
        return self.method, self.target, self.body


@dataclass
class ProxiedSandbox:
    app: Starlette
    base_url: str  # the API base URL through the proxy
    log: list[ProxiedRequest] = field(default_factory=list)


class _QuietInjectedDrops(logging.Filter):
    """uvicorn logs a traceback for each connection the sandbox drops on purpose; those are not errors here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


def _loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    return sock


def _response(status: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [
        f"HTTP/1.1 {status}",
        *(f"{name}: {value}" for name, value in headers.items()),
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


BAD_GATEWAY = _response("502 Bad Gateway", {"Content-Type": "text/plain"}, b"Bad Gateway")
RATE_LIMITED = _response(
    "429 Too Many Requests",
    {"Content-Type": "application/json", "Retry-After": str(RETRY_AFTER_SECONDS)},
    json.dumps(
        {"error": "ConnectWiseAPI", "message": f"Too many requests. Please try again in {RETRY_AFTER_SECONDS} seconds."}
    ).encode(),
)


class _Proxy:
    def __init__(self, upstream_port: int, choose: Callable[[ProxiedRequest], str], log: list[ProxiedRequest]) -> None:
        self.upstream_port = upstream_port
        self.choose = choose
        self.log = log

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head, request = await self._read_request(reader)
            request.action = self.choose(request)
            if request.action not in ACTIONS:
                raise ValueError(f"unknown proxy action {request.action!r}")
            self.log.append(request)
            if request.action == "bad_gateway":
                writer.write(BAD_GATEWAY)
            elif request.action == "rate_limited":
                writer.write(RATE_LIMITED)
            elif request.action != "reset_before":
                answer = await self._forward(head, request.body)
                if request.action == "pass":
                    writer.write(answer)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        finally:
            writer.close()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> tuple[list[bytes], ProxiedRequest]:
        head = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[:-2]
        method, target, _version = head[0].decode("latin-1").split(" ", 2)
        length = next(
            (int(line.split(b":", 1)[1]) for line in head[1:] if line.lower().startswith(b"content-length:")), 0
        )
        body = await reader.readexactly(length)
        return head, ProxiedRequest(method, target, body, time.monotonic())

    async def _forward(self, head: list[bytes], body: bytes) -> bytes:
        """The upstream's answer, as far as it came: the sandbox's own injected drops stay drops."""
        reader, writer = await asyncio.open_connection(LOOPBACK, self.upstream_port)
        try:
            headers = [line for line in head[1:] if not line.lower().startswith(b"connection:")]
            writer.write(b"\r\n".join([head[0], *headers, b"Connection: close", b"", b""]) + body)
            await writer.drain()
            return await reader.read()  # to the end: the sandbox closes after its answer
        finally:
            writer.close()


def random_faults(seed: int, rates: dict[str, float]) -> Callable[[ProxiedRequest], str]:
    """A `choose` that picks each fault at its rate per request, at most two in a row for the same request, so
    that reads (tried four times) get through and a lost answer is always followed by a successful look."""
    rng = random.Random(seed)
    faulted_in_a_row: Counter[tuple] = Counter()

    def choose(request: ProxiedRequest) -> str:
        roll, action = rng.random(), "pass"
        for fault, rate in rates.items():
            if roll < rate:
                action = fault
                break
            roll -= rate
        if action != "pass" and faulted_in_a_row[request.key] < 2:
            faulted_in_a_row[request.key] += 1
            return action
        faulted_in_a_row[request.key] = 0
        return "pass"

    return choose


@contextlib.asynccontextmanager
async def proxied_sandbox(
    settings: SandboxSettings, choose: Callable[[ProxiedRequest], str]
) -> AsyncIterator[ProxiedSandbox]:
    """A sandbox served by uvicorn on loopback behind a fault proxy; both stop when the block ends."""
    proxy_socket, sandbox_socket = _loopback_socket(), _loopback_socket()
    proxy_port, sandbox_port = proxy_socket.getsockname()[1], sandbox_socket.getsockname()[1]
    base_url = f"http://{LOOPBACK}:{proxy_port}{API_ROOT}"
    served = ProxiedSandbox(create_app(settings, base_url=base_url), base_url)
    sandbox = uvicorn.Server(uvicorn.Config(served.app, log_config=None, log_level="warning", lifespan="off"))
    quiet = _QuietInjectedDrops()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    sandbox_task = asyncio.create_task(sandbox.serve(sockets=[sandbox_socket]))
    proxy = await asyncio.start_server(_Proxy(sandbox_port, choose, served.log).handle, sock=proxy_socket)
    try:
        while not sandbox.started:
            if sandbox_task.done():
                sandbox_task.result()  # it failed to start: raise why
            await asyncio.sleep(0.01)
        yield served
    finally:
        proxy.close()
        await proxy.wait_closed()
        sandbox.should_exit = True
        await sandbox_task
        logging.getLogger("uvicorn.error").removeFilter(quiet)
