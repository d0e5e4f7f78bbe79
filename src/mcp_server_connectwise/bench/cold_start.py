"""The stdio server's cold start: how long from spawning it to its first answer, beside the MCP SDK's own import."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

_READY = "import sys; sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.read()"


def _seconds_to_lines(command: list[str], send: bytes = b"", lines: int = 1) -> float:
    """Seconds from spawning `command` (and writing `send` to it) to its `lines`-th line on stdout. The child
    is killed then, so interpreter shutdown is not counted: a server is measured by when it can answer."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(send)
        child.stdin.flush()
        for _ in range(lines):
            child.stdout.readline()
        return time.perf_counter() - started
    finally:
        child.kill()
        child.wait()


def _json_lines(*messages: dict) -> bytes:
    return b"".join(json.dumps(message).encode() + b"\n" for message in messages)


# The handshake era's opening: initialize, initialized, then tools/list. The first line out answers
# initialize; the second answers tools/list.
_HANDSHAKE = _json_lines(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"},
        },
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
)


def bench_cold_start(runs: int) -> list[tuple[str, str]]:
    # Interleaved, so a busy moment on the machine weighs on all three measures alike.
    sdk_import, server_import, first_list = [], [], []
    for _ in range(runs):
        sdk_import.append(_seconds_to_lines([sys.executable, "-c", "import mcp.server; " + _READY]))
        server_import.append(
            _seconds_to_lines([sys.executable, "-c", "import mcp_server_connectwise.server; " + _READY])
        )
        first_list.append(
            _seconds_to_lines([sys.executable, "-m", "mcp_server_connectwise", "demo"], _HANDSHAKE, lines=2)
        )
    sdk, ours, listed = (statistics.median(samples) for samples in (sdk_import, server_import, first_list))
    return [
        ("import mcp.server (the SDK alone), median", f"{sdk * 1000:.0f} ms"),
        ("import of our server beyond the SDK, median", f"{(ours - sdk) * 1000:.0f} ms"),
        ("stdio demo: spawn to first tools/list answer, median", f"{listed * 1000:.0f} ms"),
        ("our start-up beyond the SDK import (first tools/list minus SDK import)", f"{(listed - sdk) * 1000:.0f} ms"),
    ]
