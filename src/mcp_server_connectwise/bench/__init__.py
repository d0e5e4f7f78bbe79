"""`mcp-server-connectwise bench`: the benchmarks whose numbers the README records.

Speed and size targets live here, never in timed unit tests. Sections: the sandbox (requests/second, seeding),
the tools (ConnectWise requests per call, bytes to the model, added latency), call latency under the rate budget
(concurrent sessions, a sandbox latency, the token bucket), an alert storm, replicas sharing state through Redis,
the callback receiver and event log, tools/list bytes per tool, the stdio server's cold start and an RMM sync of
200 devices.
"""

from __future__ import annotations

import asyncio
import sys

from mcp_server_connectwise import __version__
from mcp_server_connectwise.bench.alerts import bench_alerts
from mcp_server_connectwise.bench.budget import bench_budget
from mcp_server_connectwise.bench.callbacks import bench_callbacks
from mcp_server_connectwise.bench.cold_start import bench_cold_start
from mcp_server_connectwise.bench.listing import bench_listing
from mcp_server_connectwise.bench.sandbox import bench_sandbox
from mcp_server_connectwise.bench.shared_state import bench_shared_state
from mcp_server_connectwise.bench.sync import bench_sync
from mcp_server_connectwise.bench.tools import bench_tools


def _print_section(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n### {title}\n")
    print("| metric | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


def run_bench(quick: bool) -> None:
    """Print the report, in the README's markdown; `quick` takes smaller sizes, for a smoke run."""
    print(f"mcp-server-connectwise {__version__} benchmarks (python {sys.version.split()[0]}, quick={quick})")
    _print_section("Sandbox", asyncio.run(bench_sandbox(quick)))
    _print_section("Tools", asyncio.run(bench_tools(quick)))
    _print_section("Call latency under the rate budget", asyncio.run(bench_budget(quick)))
    _print_section("Alert storm", asyncio.run(bench_alerts(quick)))
    _print_section("Shared state (Redis)", asyncio.run(bench_shared_state(quick)))
    _print_section("Callbacks", asyncio.run(bench_callbacks(quick)))
    _print_section("tools/list bytes", asyncio.run(bench_listing()))
    _print_section("Cold start", bench_cold_start(runs=3 if quick else 5))
    _print_section("Configuration sync", asyncio.run(bench_sync(quick)))
