"""`bundle build [--out DIR]` writes the Claude Desktop bundle's directory (see `mcp_server_connectwise.bundle`);
`bundle serve` is what the installed bundle starts, with the user's settings as the host substituted them."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mcp_server_connectwise.bundle import MCPB_CLI, OPTIONS, USER_CONFIG, BundleError
from mcp_server_connectwise.cli.arguments import PROGRAM, UsageError

DEMO_NOTICE = (
    "No tenants.toml is chosen in this extension's settings, so it serves the built-in demo: tenant demo, "
    f"made-up data. To work a real ConnectWise: `{PROGRAM} tenants init`, fill in the file, store each tenant's "
    "keys with `tenants set-keys NAME`, then choose the file in the settings."
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bundle", help="build the Claude Desktop bundle (MCPB) into dist/")
    actions = parser.add_subparsers(dest="bundle_command", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="write the bundle's directory, for `mcpb pack` (from a checkout)")
    build.add_argument("--out", metavar="DIR", help="where to write it (default: the checkout's dist/)")
    serve = actions.add_parser("serve", help="what the installed bundle runs: serve on stdio with its settings")
    for option, key in OPTIONS.items():
        serve.add_argument(option, metavar="VALUE", dest=key, help=USER_CONFIG[key]["description"])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.bundle_command == "build":
        return _build(args.out)
    return _serve(args)


def _build(out: str | None) -> int:
    from pathlib import Path

    from mcp_server_connectwise.bundle import build

    try:
        bundle = build(Path(out).expanduser().absolute() if out else None)
    except BundleError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote the bundle's directory {bundle}; pack it into a .mcpb with the official CLI:")
    print(f"  npx {MCPB_CLI} pack {bundle} {bundle.with_suffix('.mcpb')}")
    return 0


def given(value: str | None) -> str | None:
    """A setting as the host passed it: None when left empty, or left as its `${user_config...}` placeholder
    (a host keeps the placeholder of a setting without a value)."""
    if value is None or not value.strip() or value.startswith("${"):
        return None
    return value


def _serve(args: argparse.Namespace) -> int:
    import mcp_server_connectwise.cli.demo as demo
    import mcp_server_connectwise.cli.serve as serve

    config, tenant = given(args.tenants_config), given(args.default_tenant)
    read_only = ["--read-only"] if (given(args.read_only) or "false").lower() == "true" else []
    if config is None:
        if tenant not in (None, "demo"):
            print(f"{PROGRAM}: warning: default tenant {tenant!r} ignored: the demo has one, demo", file=sys.stderr)
        return demo.run(_parsed(demo, ["demo", *read_only]), notice=DEMO_NOTICE)
    return serve.run(
        _parsed(serve, ["serve", "--config", config, *(["--tenant", tenant] if tenant else []), *read_only])
    )


def _parsed(subcommand: Any, argv: list[str]) -> argparse.Namespace:
    """`argv` as the subcommand's own parser reads it: every option it has, with its defaults."""
    parser = argparse.ArgumentParser(prog=PROGRAM)
    subcommand.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)
