"""Graceful shutdown, for real: `serve` as the console script over stdio and over streamable HTTP, in front of a
separate `sandbox --latency` process, so that a write takes seconds; SIGTERM or stdin EOF arrives while it runs.
The call is answered with its result, the audit log has its `ok` line, and the process exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from cli.test_serve_and_demo_cli import free_port
from mcp_server_connectwise.http_auth import hash_token, new_token
from mcp_server_connectwise.sandbox.settings import API_ROOT, SandboxSettings
from mcp_server_connectwise.shutdown import SHUTTING_DOWN, SHUTTING_DOWN_MESSAGE
from server.test_stdio_inspector import console_script

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LATENCY_MS = 700  # per sandbox request: a note takes several of them, so a few seconds
NOTE = {"ticket_id": 1001, "text": "Rebooted the printer."}


def wait_until(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def sandbox() -> Iterator[int]:
    """A slow sandbox on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [console_script(), "sandbox", "--port", str(port), "--tickets", "5", "--latency", str(LATENCY_MS)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import socket

        def listening() -> bool:
            assert process.poll() is None, "the sandbox exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until(listening, "the sandbox")
        yield port
    finally:
        process.terminate()
        process.wait(10)


def tenant_config(tmp_path: Path, port: int, extra: str = "") -> tuple[Path, dict[str, str]]:
    """The config of tenant acme at the sandbox, and the environment with its keys (a plaintext keyring, allowed)."""
    import keyrings.alt.file

    settings = SandboxSettings()
    data_home = tmp_path / "data"
    keyring = keyrings.alt.file.PlaintextKeyring()
    keyring.file_path = str(data_home / "python_keyring" / "keyring_pass.cfg")
    keyring.set_password("mcp-server-connectwise", "acme/public_key", settings.public_key)
    keyring.set_password("mcp-server-connectwise", "acme/private_key", settings.private_key)
    config = tmp_path / "tenants.toml"
    config.write_text(
        f'[audit]\npath = "{tmp_path / "audit.jsonl"}"\n[secrets]\nallow_plaintext_keyring = true\n{extra}\n'
        f'[tenants.acme]\ncompany_id = "{settings.company}"\n'
        f'client_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"\nbase_url = "http://127.0.0.1:{port}{API_ROOT}"\n'
    )
    env = {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(data_home),
    }
    return config, env


def audit_lines(tmp_path: Path) -> list[dict]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def note_in_flight(tmp_path: Path) -> bool:
    """The note's intent line is written (fsynced) just before its POST is sent, its call line after the answer."""
    lines = audit_lines(tmp_path)
    return any(line.get("kind") == "intent" for line in lines) and not any("outcome" in line for line in lines)


def the_note_was_audited_ok(tmp_path: Path) -> None:
    [call] = [line for line in audit_lines(tmp_path) if "outcome" in line]
    assert (call["tool"], call["outcome"]) == ("add_ticket_note", "ok"), call


# --- stdio: JSON-RPC lines on the console script's pipes ------------------------------------------------------


class StdioServer:
    def __init__(self, tmp_path: Path, port: int) -> None:
        config, env = tenant_config(tmp_path, port)
        self.stderr_path = tmp_path / "stderr.log"
        self.process = subprocess.Popen(
            [console_script(), "serve", "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_path.open("w"),
            env=env,
        )
        self.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "1"},
                },
            }
        )
        assert self.receive()["id"] == 1
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def call(self, request_id: int, tool: str, arguments: dict) -> None:
        self.send(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }
        )

    def receive(self) -> dict:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the server closed stdout; stderr:\n{self.stderr()}"
        return json.loads(line)

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def close(self) -> None:
        if self.process.stdin is not None and self.process.stdin.closed:
            self.process.stdin = None
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)


@pytest.fixture
def stdio_server(tmp_path, sandbox) -> Iterator[StdioServer]:
    server = StdioServer(tmp_path, sandbox)
    try:
        yield server
    finally:
        server.close()


def test_sigterm_over_stdio_answers_the_write_in_flight_then_exits_0(tmp_path, stdio_server):
    started = time.monotonic()
    stdio_server.call(2, "add_ticket_note", NOTE)
    wait_until(lambda: note_in_flight(tmp_path), "the note's POST")
    stdio_server.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "SIGTERM: taking no new requests" in stdio_server.stderr(), "the signal to be handled")
    stdio_server.call(3, "add_ticket_note", NOTE)  # after the signal: not run, refused at once

    answers = {answer["id"]: answer for answer in (stdio_server.receive(), stdio_server.receive())}
    assert stdio_server.process.wait(30) == 0
    assert answers[3]["error"] == {"code": SHUTTING_DOWN, "message": SHUTTING_DOWN_MESSAGE}
    result = answers[2]["result"]
    assert result["isError"] is False, result
    assert result["structuredContent"]["ticket_id"] == 1001
    the_note_was_audited_ok(tmp_path)  # one note only: the refused call sent nothing
    assert time.monotonic() - started < 25
    assert "finishing 1 request(s) in flight" in stdio_server.stderr()


def test_stdin_eof_over_stdio_answers_the_write_in_flight_before_exiting(tmp_path, stdio_server):
    stdio_server.call(2, "add_ticket_note", NOTE)
    wait_until(lambda: note_in_flight(tmp_path), "the note's POST")
    assert stdio_server.process.stdin is not None
    stdio_server.process.stdin.close()  # the client goes away, reading on

    answer = stdio_server.receive()
    assert stdio_server.process.wait(30) == 0
    assert answer["id"] == 2 and answer["result"]["isError"] is False, answer
    the_note_was_audited_ok(tmp_path)
    assert "end of input: finishing 1 request(s) in flight" in stdio_server.stderr()


def test_sigterm_over_stdio_with_nothing_in_flight_exits_0_at_once(tmp_path, stdio_server):
    started = time.monotonic()
    stdio_server.process.send_signal(signal.SIGTERM)
    assert stdio_server.process.wait(30) == 0
    assert time.monotonic() - started < 5


# --- streamable HTTP: the SDK's client, with a bearer token ---------------------------------------------------


async def test_sigterm_over_http_answers_the_write_in_flight_then_exits_0(tmp_path, sandbox):
    token = new_token()
    principal = f'[http.principals.alice]\ntoken_sha256 = "{hash_token(token)}"\ntenants = ["acme"]\n'
    config, env = tenant_config(tmp_path, sandbox, principal)
    port = free_port()
    stderr_path = tmp_path / "stderr.log"
    process = subprocess.Popen(
        [console_script(), "serve", "--config", str(config), "--transport", "http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=stderr_path.open("w"),
        env=env,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        await asyncio.to_thread(wait_until, lambda: "Uvicorn running" in stderr_path.read_text(), "the server")
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            # The SDK's client lists the tools (to check results against their schemas) before its first call's
            # result is returned: done now, since a request sent once the server is stopping finds it gone.
            await client.list_tools()
            call = asyncio.create_task(client.call_tool("add_ticket_note", NOTE))
            await asyncio.to_thread(wait_until, lambda: note_in_flight(tmp_path), "the note's POST")
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            result = await asyncio.wait_for(call, 30)
            code = await asyncio.to_thread(process.wait, 30)
        async with httpx2.AsyncClient() as late:  # the server has stopped listening
            with pytest.raises(httpx2.ConnectError):
                await late.post(url, json={})
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
    assert result.is_error is False, result
    assert result.structured_content["ticket_id"] == 1001
    assert code == 0, stderr_path.read_text()
    assert time.monotonic() - started < 20  # not the whole grace period
    the_note_was_audited_ok(tmp_path)
