"""Running the server: what `serve` and `demo` need before they listen, the demo's announcement, and both network
transports for real, with bearer tokens."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from mcp_server_connectwise.cli import main
from mcp_server_connectwise.cli.demo import banner as _demo_banner
from mcp_server_connectwise.cli.demo import run as run_demo
from mcp_server_connectwise.cli.serve import run as run_serve
from mcp_server_connectwise.config import ConfigError
from mcp_server_connectwise.http_auth import hash_token, new_token
from mcp_server_connectwise.toolsets import REGISTRY

from support.registry import READS, TOOLS
from support.slow_clients import slow_client


def args(**values) -> argparse.Namespace:
    defaults = dict(
        config=None,
        transport="stdio",
        host="127.0.0.1",
        port=8000,
        tenant=None,
        read_only=False,
        toolsets=None,
        audit_path=None,
        stateless=False,
    )
    return argparse.Namespace(**(defaults | values))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_the_demo_refuses_a_non_loopback_host_in_one_line(host, capsys):
    assert run_demo(args(transport="http", host=host)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"refusing to listen on {host}" in err and "loopback only" in err


def write_config(tmp_path: Path, http: str = "") -> Path:
    config = tmp_path / "tenants.toml"
    config.write_text(
        f'{http}\n[tenants.acme]\ncompany_id = "acme"\nclient_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"\nsite = "api-na.myconnectwise.net"\n'
    )
    return config


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_serve_over_the_network_needs_principals(tmp_path, transport):
    config = write_config(tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"no \[http.principals\] are configured: create one with "
        r"`mcp-server-connectwise tokens create NAME --tenants a,b`",
    ):
        run_serve(args(config=str(config), transport=transport))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_serve_beyond_loopback_needs_allowed_hosts_and_origins(tmp_path, host):
    principal = f'[http.principals.alice]\ntoken_sha256 = "{"a" * 64}"\ntenants = ["acme"]\n'
    config = write_config(tmp_path, principal)
    with pytest.raises(ConfigError, match=f"binding {host} exposes the server beyond this machine"):
        run_serve(args(config=str(config), transport="http", host=host))


@pytest.mark.parametrize("transport", ["stdio", "sse"])
def test_serve_stateless_is_for_streamable_http_only(tmp_path, capsys, transport):
    config = write_config(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--config", str(config), "--transport", transport, "--stateless"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "mcp-server-connectwise: --stateless is for streamable HTTP: add --transport http\n"
    )


def test_serve_names_an_unknown_default_tenant_at_start(tmp_path):
    config = tmp_path / "tenants.toml"
    config.write_text(
        '[tenants.acme]\ncompany_id = "acme"\nclient_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"\nsite = "api-na.myconnectwise.net"\n'
    )
    with pytest.raises(ConfigError, match="unknown tenant 'globex'; known tenants: acme"):
        run_serve(args(config=str(config), tenant="globex"))


def test_the_demo_says_it_is_the_sandbox_and_how_to_connect(tmp_path):
    stdio = _demo_banner(args(), tmp_path / "audit.jsonl")
    assert "SANDBOX" in stdio and str(tmp_path / "audit.jsonl") in stdio
    desktop = json.loads(stdio[stdio.index("{") : stdio.rindex("}") + 1])
    command = desktop["mcpServers"]["connectwise-demo"]
    assert command["args"][-1] == "demo" and Path(command["command"]).is_absolute()
    assert "npx @modelcontextprotocol/inspector --cli --method tools/list -- " in stdio
    http = _demo_banner(args(transport="http", port=8123), tmp_path / "audit.jsonl")
    assert "http://127.0.0.1:8123/mcp" in http


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(tmp_path: Path, transport: str, *command: str, file_limit: int | None = None) -> tuple[subprocess.Popen, int]:
    """Start the server; with `file_limit`, under that soft limit of open files (`ulimit -n`)."""
    port = free_port()

    def limit_files() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (file_limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_server_connectwise", *command, "--transport", transport, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limit_files if file_limit else None,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode()) from None
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the server did not start listening")


def stop(process: subprocess.Popen) -> str:
    """Stop the server; its stderr."""
    process.terminate()
    return process.communicate(timeout=10)[1].decode()


@asynccontextmanager
async def connected(transport: str, url: str, token: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    if transport == "sse":
        async with Client(sse_client(url, headers=headers)) as client:
            yield client
        return
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


@pytest.mark.parametrize(("transport", "path"), [("http", "/mcp"), ("sse", "/sse")])
async def test_the_demo_serves_over_the_network_transports_with_its_own_token(tmp_path, transport, path):
    process, port = start(tmp_path, transport, "demo", "--audit-path", str(tmp_path / "audit.jsonl"))
    try:
        token = process.stdout.readline().decode().strip()
        url = f"http://127.0.0.1:{port}{path}"
        async with httpx2.AsyncClient() as raw:
            assert (await raw.get(url)).status_code == 401
        async with connected(transport, url, token) as client:
            tools = (await client.list_tools()).tools
            result = await client.call_tool("search_tickets", {"limit": 1})
    finally:
        stderr = stop(process)
    assert token.startswith("cwmcp_") and token not in stderr
    assert {tool.name for tool in tools} == TOOLS
    assert result.is_error is False and len(result.structured_content["tickets"]) == 1
    [line] = [json.loads(text) for text in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert line["tool"] == "search_tickets" and line["principal"] == "demo"


async def test_serve_read_only_over_http_lists_no_write_tool_and_needs_the_token(tmp_path):
    token = new_token()
    principal = f'[http.principals.alice]\ntoken_sha256 = "{hash_token(token)}"\ntenants = ["acme"]\n'
    config = write_config(tmp_path, f'[audit]\npath = "audit.jsonl"\n{principal}')
    process, port = start(tmp_path, "http", "serve", "--config", str(config), "--read-only")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer wrong"}) as wrong:
            assert (await wrong.post(url, json={})).status_code == 401
        async with connected("http", url, token) as client:
            tools = (await client.list_tools()).tools
    finally:
        stderr = stop(process)
    assert {tool.name for tool in tools} == READS
    assert "http://127.0.0.1:" in stderr and token not in stderr and hash_token(token) not in stderr


async def test_serve_toolsets_boards_read_only_lists_exactly_the_board_reads(tmp_path):
    token = new_token()
    principal = f'[http.principals.alice]\ntoken_sha256 = "{hash_token(token)}"\ntenants = ["acme"]\n'
    config = write_config(tmp_path, f'[server]\ntoolsets = ["tickets"]\n[audit]\npath = "audit.jsonl"\n{principal}')
    # --toolsets wins over the config's [server] toolsets; --read-only over both.
    process, port = start(tmp_path, "http", "serve", "--config", str(config), "--toolsets", "boards", "--read-only")
    try:
        async with connected("http", f"http://127.0.0.1:{port}/mcp", token) as client:
            tools = (await client.list_tools()).tools
            instructions = client.instructions
    finally:
        stop(process)
    assert {tool.name for tool in tools} == {"list_boards", "list_board_statuses"}
    assert "search_tickets" not in instructions and "list_boards" in instructions


def test_serve_refuses_an_unknown_toolset_naming_the_file(tmp_path):

    config = write_config(tmp_path, '[server]\ntoolsets = ["tickets", "billing"]\n')
    with pytest.raises(ConfigError) as refused:
        run_serve(args(config=str(config)))
    known = ", ".join(REGISTRY.toolset_names)
    assert str(refused.value) == f"{config}: 'billing' is not a toolset; the toolsets are: {known}"


# --- the demo on a terminal, and its temporary audit log ------------------------------------------------------


class _FakeDemoServer:
    """Stands in for the stdio server: records the audit path it was given and whether it existed while it ran."""

    def __init__(self, outcome: type[BaseException] | None = None) -> None:
        self.outcome = outcome
        self.audit_path: Path | None = None
        self.existed_while_running = False

    def build(self, audit_path: Path, *, principal: str, **_options: object) -> _FakeDemoServer:
        self.audit_path = audit_path
        return self

    def run(self) -> None:
        assert self.audit_path is not None
        self.existed_while_running = self.audit_path.exists()
        if self.outcome is not None:
            raise self.outcome


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("on_a_terminal", [True, False])
def test_the_demo_on_a_terminal_says_it_waits_and_removes_its_temporary_audit_log(
    monkeypatch, capsys, on_a_terminal
) -> None:
    fake = _FakeDemoServer()
    monkeypatch.setattr("mcp_server_connectwise.server.build_demo_server", fake.build)
    monkeypatch.setattr(sys, "stdin", _Terminal() if on_a_terminal else io.StringIO())
    assert run_demo(args()) == 0
    err = capsys.readouterr().err
    waiting = (
        "mcp-server-connectwise demo: waiting for an MCP client on stdin (a stdio server: let a client start it, "
        "as shown above); Ctrl-C stops."
    )
    assert (waiting in err.splitlines()) is on_a_terminal
    assert fake.existed_while_running and not fake.audit_path.exists()
    assert f"Audit log: {fake.audit_path} (temporary: removed when the demo stops)" in err


def test_ctrl_c_still_removes_the_temporary_audit_log(monkeypatch, capsys) -> None:
    fake = _FakeDemoServer(KeyboardInterrupt)
    monkeypatch.setattr("mcp_server_connectwise.server.build_demo_server", fake.build)
    with pytest.raises(SystemExit) as exited:
        main(["demo"])
    assert exited.value.code == 130
    assert fake.existed_while_running and not fake.audit_path.exists()


def test_an_audit_path_given_is_kept(tmp_path, monkeypatch, capsys) -> None:
    fake = _FakeDemoServer()
    monkeypatch.setattr("mcp_server_connectwise.server.build_demo_server", fake.build)
    audit = tmp_path / "audit.jsonl"
    audit.write_text("")
    assert run_demo(args(audit_path=str(audit))) == 0
    assert fake.audit_path == audit and audit.exists()
    assert "temporary" not in capsys.readouterr().err


def _demo_process(stdin: int) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_server_connectwise", "demo"], stdin=stdin, stderr=subprocess.PIPE, text=True
    )
    for line in process.stderr:
        if line.startswith("Audit log: "):
            return process, Path(line.split()[2])
    raise AssertionError(f"no audit log line; exit {process.wait(10)}")


def test_a_real_demo_removes_its_temporary_audit_log_on_eof_and_on_sigterm() -> None:
    process, audit = _demo_process(subprocess.DEVNULL)  # a client that closes stdin
    assert process.wait(30) == 0
    assert not audit.exists()

    process, audit = _demo_process(subprocess.PIPE)
    try:
        assert audit.exists()
        process.terminate()  # a client that stops it with SIGTERM: a graceful shutdown (see test_graceful_shutdown)
        assert process.wait(30) == 0
    finally:
        process.kill()
        process.communicate(timeout=10)
    assert not audit.exists()


# --- serve: the API keys in a plaintext keyring ---------------------------------------------------------------


def test_serve_refuses_keys_from_a_plaintext_keyring_unless_the_config_allows_it(tmp_path) -> None:
    import anyio
    import keyrings.alt.file
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    from mcp_server_connectwise.sandbox.settings import API_ROOT, SandboxSettings

    port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "mcp_server_connectwise", "sandbox", "--port", str(port), "--tickets", "5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # What `pip install keyrings.alt` gives: the keys in a base64 file (here under tmp_path), stored in-process.
    data_home = tmp_path / "data"
    plaintext = keyrings.alt.file.PlaintextKeyring()
    plaintext.file_path = str(data_home / "python_keyring" / "keyring_pass.cfg")
    settings = SandboxSettings()
    plaintext.set_password("mcp-server-connectwise", "acme/public_key", settings.public_key)
    plaintext.set_password("mcp-server-connectwise", "acme/private_key", settings.private_key)
    config = tmp_path / "tenants.toml"
    tenant = (
        f'[audit]\npath = "audit.jsonl"\n[tenants.acme]\ncompany_id = "{settings.company}"\n'
        f'client_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"\nbase_url = "http://127.0.0.1:{port}{API_ROOT}"\n'
    )
    env = {"PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring", "XDG_DATA_HOME": str(data_home)}

    async def search(stderr: Path):
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "mcp_server_connectwise", "serve", "--config", str(config)], env=env
        )
        with stderr.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                return await client.call_tool("search_tickets", {"limit": 1})

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and sandbox.poll() is None, "the sandbox did not start"
                time.sleep(0.1)

        config.write_text(tenant)
        refused = anyio.run(search, tmp_path / "refused.err")
        config.write_text(tenant + "[secrets]\nallow_plaintext_keyring = true\n")
        allowed = anyio.run(search, tmp_path / "allowed.err")
    finally:
        sandbox.terminate()
        sandbox.communicate(timeout=10)

    refusal = (
        "keyrings.alt.file.PlaintextKeyring keeps API keys unencrypted on disk, so it is refused: use the OS keychain"
    )
    assert refused.is_error is True
    (text,) = [content.text for content in refused.content]
    assert text.startswith(
        f"Error executing tool search_tickets: The API keys of tenant acme cannot be read: the keyring backend {refusal}"
    )
    assert text.endswith(f"set `[secrets] allow_plaintext_keyring = true` in {config}.") and "\n" not in text
    assert refusal in (tmp_path / "refused.err").read_text()  # said at start-up as well

    assert allowed.is_error is False and len(allowed.structured_content["tickets"]) == 1
    warnings = [line for line in (tmp_path / "allowed.err").read_text().splitlines() if "unencrypted" in line]
    assert len(warnings) == 1 and "allowed by `[secrets] allow_plaintext_keyring = true`" in warnings[0]
    for stderr in ("refused.err", "allowed.err"):
        assert settings.private_key not in (tmp_path / stderr).read_text()


@pytest.mark.skipif(sys.platform == "win32", reason="no ulimit -n on Windows")
async def test_serve_under_a_256_file_limit_cuts_off_300_slow_clients_and_keeps_serving(tmp_path):
    """The hostile tester's run: 300 unauthenticated connections sending a byte a second, under `ulimit -n 256`."""
    token = new_token()
    principal = f'[http.principals.alice]\ntoken_sha256 = "{hash_token(token)}"\ntenants = ["acme"]\n'
    limits = "[http]\nheader_timeout_seconds = 3\nlog_repeat_burst = 3\n"
    config = write_config(tmp_path, f'[audit]\npath = "audit.jsonl"\n{limits}{principal}')
    process, port = start(tmp_path, "http", "serve", "--config", str(config), file_limit=256)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
        slow = []
        for _ in range(10):  # 300 in one second (all in one go, most would wait in the kernel, costing nothing)
            slow += [asyncio.create_task(slow_client(port, head, timeout=15)) for _ in range(30)]
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        calls = []
        for _ in range(3):  # each on a new connection, while the slow ones hold every other one
            started = time.monotonic()
            async with connected("http", url, token) as client:
                tools = (await asyncio.wait_for(client.list_tools(), 5)).tools
            calls.append((len(tools), time.monotonic() - started))
        still_held = sum(not task.done() for task in slow)
        held = await asyncio.gather(*slow)
    finally:
        stderr = stop(process)
    assert [count for count, _ in calls] == [len(TOOLS)] * 3 and max(seconds for _, seconds in calls) < 3
    assert still_held > 100  # the calls went through while the slow clients were still connected
    assert max(held) < 3 + 3  # none outlived the header timeout by much
    assert "max_connections = 200 lowered to 144: this process may open only 256 files" in stderr
    assert "Too many open files" not in stderr and "Traceback" not in stderr
    # Each kind of line at most 3 times, then one summary; the whole log stays small.
    # 300 slow clients, 144 connections: each slow one is cut off, by the header timeout or to admit another,
    # or refused; of each kind of line the log holds 3, then one saying how many more there were.
    counted = 0
    for kind in ["no complete request head within", "to admit another", "refused a connection"]:
        lines = [line for line in stderr.splitlines() if kind in line]
        assert len(lines) <= 4, kind
        if len(lines) == 4:
            more, summary = lines[3].split(" more lines like this in the last ", 1)
            assert summary.split(": ", 1)[0].endswith("s were not logged"), kind
            counted += int(more) + 3
        else:
            counted += len(lines)
    assert counted >= 300
    assert len(stderr) < 20_000, stderr
