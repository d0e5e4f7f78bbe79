"""The network server under abuse, run as `serve` runs it (uvicorn with `http_guard`'s protocol) on 127.0.0.1:
slow clients are cut off while real calls go on, connections and per-principal sessions are capped, idle sessions
end, a disconnect is one log line and repeated log lines are rate-limited.

Every test is bounded: at most 300 connections, a few seconds each, loopback only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server_connectwise.config import AppConfig, AuditConfig, HttpConfig, Principal
from mcp_server_connectwise.http_auth import hash_token, new_token
from mcp_server_connectwise.http_guard import REFUSAL, uvicorn_config
from mcp_server_connectwise.log_limits import RepeatedLineLimiter, install_log_limits
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.server import Listener, build_network_app

from support.slow_clients import slow_client

TOKENS = {"alice": new_token(), "bob": new_token()}
LEGACY = "2025-11-25"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def headers(principal: str, session_id: str | None = None) -> dict[str, str]:
    found = {**ACCEPT, "Authorization": f"Bearer {TOKENS[principal]}"}
    if session_id is not None:
        found |= {"Mcp-Session-Id": session_id, "Mcp-Protocol-Version": LEGACY}
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    url: str
    port: int
    server: uvicorn.Server

    @property
    def messages_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/messages/"

    @asynccontextmanager
    async def client(self, principal: str) -> AsyncIterator[Client]:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKENS[principal]}"}) as http,
            Client(streamable_http_client(self.url, http_client=http)) as client,
        ):
            yield client

    async def open_connections(self) -> int:
        return len(self.server.server_state.connections)


@asynccontextmanager
async def serving(
    tmp_path: Path, transport: str = "http", log_handler: logging.Handler | None = None, **limits: Any
) -> AsyncIterator[Served]:
    """One sandbox tenant `acme` for principals alice and bob, served as `serve` serves it, with `limits`; the
    log filters `serve` installs go on `log_handler` (caplog's)."""
    sandbox = sandbox_tenant("acme", create_app(SandboxSettings(tickets=20)))
    principals = {
        name: Principal(name=name, token_sha256=hash_token(token), tenants=("acme",)) for name, token in TOKENS.items()
    }
    http = HttpConfig(principals=principals, **limits)
    config = AppConfig(audit=AuditConfig(path=tmp_path / "audit.jsonl"), http=http, tenants={"acme": sandbox.config})
    listener = Listener(transport, "127.0.0.1", free_port())  # type: ignore[arg-type]
    app = build_network_app(
        config, listener, transports={"acme": sandbox.transport}, credentials={"acme": sandbox.credentials}
    )
    server = uvicorn.Server(uvicorn_config(app, listener.host, listener.port, http))
    log_limits = install_log_limits(http, [log_handler] if log_handler else [])
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield Served(listener.url, listener.port, server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        log_limits.remove()


async def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


# --- slow clients ---------------------------------------------------------------------------------------------


async def test_300_slow_clients_are_cut_off_after_the_header_timeout_while_real_calls_succeed(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    limits = dict(header_timeout_seconds=2, max_connections=400, log_repeat_burst=5)
    async with serving(tmp_path, log_handler=caplog.handler, **limits) as served:
        head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "  # no token: never gets to send one
        slow = [asyncio.create_task(slow_client(served.port, head, timeout=10)) for _ in range(300)]
        await wait_for(lambda: len(served.server.server_state.connections) >= 300, timeout=5)
        calls = []
        async with served.client("alice") as alice:
            while not all(task.done() for task in slow):
                started = time.monotonic()
                result = await asyncio.wait_for(alice.call_tool("search_tickets", {"limit": 1}), 5)
                calls.append((result.is_error, time.monotonic() - started))
                await asyncio.sleep(0.1)
        held = [await task for task in slow]
    assert all(2 - 0.2 <= seconds < 6 for seconds in held), (min(held), max(held))  # 2 s from the accept
    assert len(calls) >= 5 and all(is_error is False for is_error, _ in calls)
    assert max(seconds for _, seconds in calls) < 3
    assert await served.open_connections() == 0
    # 300 cut-offs, but the log holds 5 of them and one line counting the rest.
    cut = [r.getMessage() for r in caplog.records if "no complete request head within 2 s" in r.getMessage()]
    assert len(cut) == 6 and cut[-1].startswith("295 more lines like this in the last")


async def test_a_body_that_stalls_is_cut_off_after_the_body_timeout(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with serving(tmp_path, log_handler=caplog.handler, body_timeout_seconds=1) as served:
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\nAuthorization: Bearer {TOKENS['alice']}\r\n"
            "Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{"
        ).encode()
        held = await slow_client(served.port, head, timeout=10)
        # A byte a second of body does not keep it open either, nor does an early answer (here 401).
        unauthenticated = head.replace(TOKENS["alice"].encode(), b"wrong")
        dribbled = await slow_client(served.port, unauthenticated, timeout=10)
    assert 1 <= held < 3 and 1 <= dribbled < 3
    lines = [r.getMessage() for r in caplog.records if "request body did not arrive within 1 s" in r.getMessage()]
    assert len(lines) == 2 and lines[0].startswith("127.0.0.1:") and '"POST /mcp"' in lines[0]
    assert "Traceback" not in caplog.text


async def answered_once(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A kept-alive connection that has had one request answered (a 404)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(next(line for line in response.split(b"\r\n") if line.lower().startswith(b"content-length"))[15:])
    await reader.readexactly(length)
    return reader, writer, response


async def closed_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, send: bytes, limit: float) -> float:
    """Send `send` (if any) every 0.3 s until the server closes the connection: after how long."""
    started = time.monotonic()
    try:
        while time.monotonic() - started < limit:
            writer.write(send)
            try:
                if await asyncio.wait_for(reader.read(1), 0.3) == b"":
                    break
            except TimeoutError:
                pass
            except OSError:
                break
        return time.monotonic() - started
    finally:
        writer.close()


async def test_keep_alive_does_not_reset_the_header_timeout(tmp_path, caplog):
    async with serving(tmp_path, log_handler=caplog.handler, header_timeout_seconds=1) as served:
        reader, writer, response = await answered_once(served.port)
        dribbling = await closed_after(reader, writer, b"G", limit=6)  # the next head, a byte at a time
        reader, writer, _ = await answered_once(served.port)
        idle = await closed_after(reader, writer, b"", limit=6)  # nothing more: closed, and quietly
    assert response.startswith(b"HTTP/1.1 404") and dribbling < 2.5 and idle < 2.5
    assert len([r for r in caplog.records if "no complete request head within 1 s" in r.getMessage()]) == 1


# --- the connection cap ---------------------------------------------------------------------------------------


async def test_connections_beyond_max_connections_are_answered_503_at_once(tmp_path, caplog):
    async with serving(tmp_path, max_connections=3, body_timeout_seconds=30) as served:
        # Three connections busy with a request (its body still to come): none of them can make room.
        busy = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(3)]
        for _, writer in busy:
            writer.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n")
        await wait_for(lambda: len(served.server.server_state.connections) == 3)
        await asyncio.sleep(0.6)  # older than any wait for a head that could be cut short
        started = time.monotonic()
        async with httpx2.AsyncClient() as raw:
            refused = await raw.post(served.url, json=INITIALIZE, headers=headers("alice"))
            took = time.monotonic() - started
            for _, writer in busy:
                writer.close()
            await wait_for(lambda: len(served.server.server_state.connections) == 0)
            admitted = await raw.post(served.url, json=INITIALIZE, headers=headers("alice"))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5" and took < 1
    assert refused.text == "Too many open connections; try again shortly.\n" and REFUSAL.endswith(refused.content)
    assert admitted.status_code == 200
    assert "connections are open, the most [http] max_connections allows" in caplog.text


async def test_at_max_connections_a_new_connection_replaces_the_longest_wait_for_a_head(tmp_path, caplog):
    async with serving(tmp_path, max_connections=3, header_timeout_seconds=30) as served:
        silent = []
        for _ in range(3):  # connections that send nothing, oldest first
            silent.append(await asyncio.open_connection("127.0.0.1", served.port))
            await asyncio.sleep(0.2)
        await wait_for(lambda: len(served.server.server_state.connections) == 3)
        await asyncio.sleep(0.5)
        async with served.client("alice") as alice:
            result = await alice.call_tool("search_tickets", {"limit": 1})
        closed = [await asyncio.wait_for(reader.read(1), 2) == b"" for reader, _ in silent[:1]]
        still_open = [not reader.at_eof() for reader, _ in silent[1:]]
        for _, writer in silent:
            writer.close()
    assert result.is_error is False
    assert closed == [True] and all(still_open)  # the MCP client needed one connection: the oldest made room
    assert "to admit another: [http] max_connections are open and it sent no complete request head" in caplog.text


# --- sessions per principal -----------------------------------------------------------------------------------


async def test_a_principal_may_open_only_max_sessions_per_principal_streamable_sessions(tmp_path):
    async with serving(tmp_path, max_sessions_per_principal=2) as served, httpx2.AsyncClient() as raw:
        opened = [await raw.post(served.url, json=INITIALIZE, headers=headers("alice")) for _ in range(2)]
        refused = await raw.post(served.url, json=INITIALIZE, headers=headers("alice"))
        bobs = await raw.post(served.url, json=INITIALIZE, headers=headers("bob"))
        # 2026-07-28 calls open no session: alice's go on at her cap.
        async with served.client("alice") as alice:
            stateless = await alice.call_tool("search_tickets", {"limit": 1})
        first = opened[0].headers["mcp-session-id"]
        ended = await raw.delete(served.url, headers=headers("alice", first))
        after = await raw.post(served.url, json=INITIALIZE, headers=headers("alice"))
        gone = await raw.post(served.url, json=PING, headers=headers("alice", first))
    assert [response.status_code for response in opened] == [200, 200]
    assert refused.status_code == 429 and refused.headers["content-type"] == "application/json"
    assert json.loads(refused.text)["error"]["message"] == (
        "Too many open MCP sessions: principal 'alice' has 2, the most this server allows "
        "([http] max_sessions_per_principal = 2). End one (HTTP DELETE with its Mcp-Session-Id, or close its SSE "
        "stream) or wait: a session expires after 600 s without a message."
    )
    assert "mcp-session-id" not in refused.headers
    assert bobs.status_code == 200 and stateless.is_error is False
    assert ended.status_code == 200 and after.status_code == 200 and gone.status_code == 404


async def test_a_principal_may_open_only_max_sessions_per_principal_sse_streams(tmp_path):
    async with serving(tmp_path, "sse", max_sessions_per_principal=2) as served, httpx2.AsyncClient() as raw:
        alice = {"Authorization": f"Bearer {TOKENS['alice']}"}
        async with raw.stream("GET", served.url, headers=alice) as first, raw.stream("GET", served.url, headers=alice):
            refused = await raw.get(served.url, headers=alice)
            async with raw.stream("GET", served.url, headers={"Authorization": f"Bearer {TOKENS['bob']}"}) as bobs:
                bob_status = bobs.status_code
            first_status = first.status_code
        again_status = await open_when_room(raw, served.url, alice)
    assert first_status == 200 and bob_status == 200 and again_status == 200
    assert refused.status_code == 429
    assert "principal 'alice' has 2" in json.loads(refused.text)["error"]["message"]


async def open_when_room(raw: httpx2.AsyncClient, url: str, headers: dict[str, str]) -> int:
    """Open an SSE stream once the server has seen the last one close (it learns that asynchronously)."""
    deadline = time.monotonic() + 5
    while True:
        async with raw.stream("GET", url, headers=headers) as stream:
            if stream.status_code != 429 or time.monotonic() > deadline:
                return stream.status_code
        await asyncio.sleep(0.05)


# --- idle sessions --------------------------------------------------------------------------------------------


async def test_idle_streamable_sessions_end_after_the_idle_timeout_even_with_a_stream_open(tmp_path):
    async with serving(tmp_path, session_idle_timeout_seconds=1) as served, httpx2.AsyncClient(timeout=10) as raw:
        quiet, streaming, busy = [
            (await raw.post(served.url, json=INITIALIZE, headers=headers("alice"))).headers["mcp-session-id"]
            for _ in range(3)
        ]
        started = time.monotonic()
        async with raw.stream("GET", served.url, headers=headers("alice", streaming)) as stream:
            assert stream.status_code == 200

            async def keep_busy() -> list[int]:
                statuses = []
                while time.monotonic() - started < 2.5:
                    statuses.append((await raw.post(served.url, json=PING, headers=headers("alice", busy))).status_code)
                    await asyncio.sleep(0.3)
                return statuses

            busy_task = asyncio.create_task(keep_busy())
            async for _ in stream.aiter_bytes():
                pass
            stream_ended = time.monotonic() - started
            busy_statuses = await busy_task
        after = {
            name: (await raw.post(served.url, json=PING, headers=headers("alice", session_id))).status_code
            for name, session_id in [("quiet", quiet), ("streaming", streaming), ("busy", busy)]
        }
    assert 1 <= stream_ended < 2.5
    assert set(busy_statuses) == {200} and after == {"quiet": 404, "streaming": 404, "busy": 200}


async def test_idle_sse_sessions_end_after_the_idle_timeout(tmp_path):
    async with serving(tmp_path, "sse", session_idle_timeout_seconds=1) as served, httpx2.AsyncClient() as raw:
        alice = {"Authorization": f"Bearer {TOKENS['alice']}"}
        ended = {}

        async def session(name: str, keep_busy: bool) -> None:
            started = time.monotonic()
            async with raw.stream("GET", served.url, headers=alice) as stream:
                chunks = stream.aiter_bytes()
                endpoint = (await anext(chunks)).decode()
                path = endpoint.split("data: ")[1].split()[0]
                url = f"http://127.0.0.1:{served.port}{path}"
                assert (await raw.post(url, json=INITIALIZE, headers=alice)).status_code == 202
                if keep_busy:
                    while time.monotonic() - started < 2.5:
                        assert (await raw.post(url, json=PING, headers=alice)).status_code == 202
                        await asyncio.sleep(0.3)
                    ended[name] = None
                    return
                async for _ in chunks:
                    pass
                ended[name] = time.monotonic() - started
                ended["after"] = (await raw.post(url, json=PING, headers=alice)).status_code

        await asyncio.wait_for(asyncio.gather(session("quiet", False), session("busy", True)), 10)
    assert 1 <= ended["quiet"] < 2.5 and ended["busy"] is None and ended["after"] == 404


# --- logging --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_a_client_that_disconnects_mid_request_is_one_log_line_not_a_traceback(tmp_path, caplog, transport):
    caplog.set_level(logging.INFO)
    async with (
        serving(tmp_path, transport, log_handler=caplog.handler) as served,
        httpx2.AsyncClient() as raw,
        raw.stream("GET", served.url, headers={"Authorization": f"Bearer {TOKENS['alice']}"}) as stream,
    ):
        path, chunks = "/mcp", stream.aiter_bytes()  # (a dropped iterator would close the stream)
        if transport == "sse":  # a message POST to a real session
            path = (await anext(chunks)).decode().split("data: ")[1].split()[0]
        _, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
                f"Authorization: Bearer {TOKENS['alice']}\r\nAccept: application/json, text/event-stream\r\n"
                'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"jsonrpc": "2.0", '
            ).encode()
        )
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()
        await wait_for(lambda: "client disconnected" in caplog.text)
        await asyncio.sleep(0.5)  # for anything else it would log
    # One line for the POST (and, on SSE, one for the stream the test closes on its way out).
    lines = [record.getMessage() for record in caplog.records if "disconnect" in record.getMessage().lower()]
    assert [line.split(" - ", 1)[1] for line in lines if "POST" in line] == [
        f'"POST {path.split("?")[0]}" client disconnected before the response was complete'
    ]
    assert len(lines) == (2 if transport == "sse" else 1)
    assert not [record for record in caplog.records if record.exc_info] and "Traceback" not in caplog.text


def test_repeated_lines_pass_a_burst_then_one_summary_per_interval():
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    now = [0.0]
    handler = Collect()
    limiter = RepeatedLineLimiter(handler, burst=3, interval=60, clock=lambda: now[0])
    handler.addFilter(limiter)
    logger = logging.getLogger("test.repeated")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        for second in range(100):  # "too many open files", once a second for 100 s, and some INFO besides
            now[0] = float(second)
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                logger.exception("socket.accept() out of system resource")
            logger.warning("refused a connection from %s", f"127.0.0.1:{second}")
            logger.info("request %d", second)
        limiter.flush()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
    messages = [record.getMessage() for record in records]
    accept = [m for m in messages if "out of system resource" in m]
    refused = [m for m in messages if "refused a connection" in m]
    assert accept == [
        *["socket.accept() out of system resource"] * 3,
        "57 more lines like this in the last 60 s were not logged: socket.accept() out of system resource",
        *["socket.accept() out of system resource"] * 3,
        "37 more lines like this in the last 39 s were not logged: socket.accept() out of system resource",
    ]
    assert refused[:3] == [f"refused a connection from 127.0.0.1:{n}" for n in range(3)]
    assert (
        refused[3] == "57 more lines like this in the last 60 s were not logged: refused a connection from 127.0.0.1:0"
    )
    assert len(refused) == 8
    assert len([m for m in messages if m.startswith("request ")]) == 100  # INFO lines are not limited
