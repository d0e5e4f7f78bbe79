"""Running the server: loopback-only HTTP/SSE, the demo's announcement, and both network transports for real."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from mcp_server_connectwise.config import ConfigError
from mcp_server_connectwise.server import _demo_banner, run_demo, run_serve


def args(**values) -> argparse.Namespace:
    defaults = dict(config=None, transport="stdio", host="127.0.0.1", port=8000, tenant=None, read_only=False,
                    audit_path=None)
    return argparse.Namespace(**(defaults | values))


@pytest.mark.parametrize("run", [run_serve, run_demo])
@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_network_transports_refuse_a_non_loopback_host_in_one_line(run, host, capsys):
    assert run(args(transport="http", host=host)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"refusing to listen on {host}" in err and "loopback only" in err


def test_serve_names_an_unknown_default_tenant_at_start(tmp_path):
    config = tmp_path / "tenants.toml"
    config.write_text('[tenants.acme]\ncompany_id = "acme"\nclient_id = "x"\nsite = "api-na.myconnectwise.net"\n')
    with pytest.raises(ConfigError, match="unknown tenant 'globex'; known tenants: acme"):
        run_serve(args(config=str(config), tenant="globex"))


def test_the_demo_says_it_is_the_sandbox_and_how_to_connect(tmp_path):
    stdio = _demo_banner(args(), tmp_path / "audit.jsonl")
    assert "SANDBOX" in stdio and str(tmp_path / "audit.jsonl") in stdio
    desktop = json.loads(stdio[stdio.index("{"):stdio.rindex("}") + 1])
    command = desktop["mcpServers"]["connectwise-demo"]
    assert command["args"][-1] == "demo" and Path(command["command"]).is_absolute()
    assert "npx @modelcontextprotocol/inspector --cli --method tools/list -- " in stdio
    http = _demo_banner(args(transport="http", port=8123), tmp_path / "audit.jsonl")
    assert "http://127.0.0.1:8123/mcp" in http


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_demo(tmp_path: Path, transport: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_server_connectwise", "demo", "--transport", transport, "--port", str(port),
         "--audit-path", str(tmp_path / "audit.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode())
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the demo did not start listening")


@pytest.mark.parametrize(("transport", "path", "connect"), [
    ("http", "/mcp", streamable_http_client),
    ("sse", "/sse", sse_client),
])
async def test_the_demo_serves_over_the_network_transports(tmp_path, transport, path, connect):
    process, port = start_demo(tmp_path, transport)
    try:
        async with Client(connect(f"http://127.0.0.1:{port}{path}")) as client:
            tools = (await client.list_tools()).tools
            result = await client.call_tool("search_tickets", {"limit": 1})
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert len(tools) == 6
    assert result.is_error is False and len(result.structured_content["tickets"]) == 1
    [line] = [json.loads(text) for text in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert line["tool"] == "search_tickets" and line["principal"].startswith(f"{transport}:")
