"""`mcp-server-connectwise bench`: the benchmarks whose numbers the README records.

Speed and size targets live here, never in timed unit tests. Sections: the sandbox (requests/second, seeding),
the tools (ConnectWise requests per call, bytes to the model, added latency) and the stdio server's cold start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

from mcp_server_connectwise import __version__


def _median_seconds(command: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def _stdio_first_tools_list() -> float:
    """Seconds from spawning `demo` on stdio to its answer to the first `tools/list`."""
    from mcp import Client, StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server_connectwise", "demo"])
    started = time.perf_counter()
    with open(os.devnull, "w") as quiet:  # the demo's banner on stderr is not part of the report
        async with Client(stdio_client(params, errlog=quiet), mode="legacy") as client:
            await client.list_tools()
            return time.perf_counter() - started


def bench_cold_start(runs: int) -> list[tuple[str, str]]:
    sdk_import = _median_seconds([sys.executable, "-c", "import mcp.server"], runs)
    server_import = _median_seconds([sys.executable, "-c", "import mcp_server_connectwise.server"], runs)
    first_list = statistics.median(asyncio.run(_stdio_first_tools_list()) for _ in range(runs))
    return [
        ("import mcp.server (the SDK alone), median", f"{sdk_import * 1000:.0f} ms"),
        ("import of our server beyond the SDK, median", f"{(server_import - sdk_import) * 1000:.0f} ms"),
        ("stdio demo: spawn to first tools/list answer, median", f"{first_list * 1000:.0f} ms"),
        ("our start-up beyond the SDK import (first tools/list minus SDK import)",
         f"{(first_list - sdk_import) * 1000:.0f} ms"),
    ]


def _print_section(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n### {title}\n")
    print("| metric | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


def run_bench(args: argparse.Namespace) -> int:
    from mcp_server_connectwise.sandbox.bench import bench_sandbox
    from mcp_server_connectwise.server_bench import bench_server

    print(f"mcp-server-connectwise {__version__} benchmarks (python {sys.version.split()[0]}, quick={args.quick})")
    _print_section("Sandbox", asyncio.run(bench_sandbox(args.quick)))
    _print_section("Tools", asyncio.run(bench_server(args.quick)))
    _print_section("Cold start", bench_cold_start(runs=3 if args.quick else 5))
    return 0
