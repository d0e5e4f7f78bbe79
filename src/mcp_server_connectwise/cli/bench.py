"""`bench [--quick]`: run the benchmarks (the `bench` package) and print their report."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="run the benchmarks and print a report")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mcp_server_connectwise.bench import run_bench

    run_bench(args.quick)
    return 0
