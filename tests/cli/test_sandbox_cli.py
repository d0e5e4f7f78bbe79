"""`run_sandbox` serves on 127.0.0.1 and answers a plain HTTP client with Basic auth like ConnectWise."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx2

SCRIPT = """
import argparse, sys
from mcp_server_connectwise.cli.sandbox import run as run_sandbox
args = argparse.Namespace(port=int(sys.argv[1]), seed=1, tickets=50, company="sandbox", public_key="sandbox-public",
                          private_key="sandbox-private", fault_rate=0.0, rate_limit=0, latency=0.0)
sys.exit(run_sandbox(args))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_served_sandbox_answers_like_connectwise():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        banner = process.stdout.readline()
        base = f"http://127.0.0.1:{port}/v4_6_release/apis/3.0"
        assert base in banner
        deadline = time.monotonic() + 15
        while True:
            try:
                info = httpx2.get(f"{base}/system/info", auth=("sandbox+sandbox-public", "sandbox-private"))
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, process.stderr.read() if process.poll() is not None else ""
                time.sleep(0.1)
        assert info.status_code == 200 and info.json()["isCloud"] is False
        tickets = httpx2.get(
            f"{base}/service/tickets",
            params={"pageSize": 2},
            auth=("sandbox+sandbox-public", "sandbox-private"),
            headers={"clientId": "curl"},
        )
        assert tickets.status_code == 200 and len(tickets.json()) == 2
        assert (
            f"http://127.0.0.1:{port}/v4_6_release/apis/3.0/service/tickets?pageSize=2&page=2"
            in tickets.headers["Link"]
        )
        assert tickets.json()[0]["board"]["_info"]["board_href"].startswith(base)
        wrong = httpx2.get(f"{base}/service/tickets", auth=("sandbox+sandbox-public", "nope"))
        assert wrong.status_code == 401 and wrong.json()["message"] == "UserNotAuthenticated"
        company = httpx2.get(f"http://127.0.0.1:{port}/login/companyinfo/sandbox").json()
        assert company["Codebase"] == "v4_6_release/"
    finally:
        process.terminate()
        process.wait(timeout=10)
