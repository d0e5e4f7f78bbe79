"""The CLI's layout: one module per subcommand, imports pointing down, and nothing heavy imported before it is needed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server_connectwise import cli

SUBCOMMAND_MODULES = [
    "serve",
    "demo",
    "config",
    "bundle",
    "sandbox",
    "tenants",
    "tokens",
    "callbacks",
    "audit",
    "bench",
]
# What a subcommand imports only when it runs: the config (pydantic), the keyring, the HTTP stack, the MCP SDK.
HEAVY = ["pydantic", "keyring", "httpx2", "starlette", "uvicorn", "mcp"]


def modules_loaded_by(code: str) -> set[str]:
    check = f"import sys\n{code}\nprint(' '.join(sys.modules))"
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    return set(run.stdout.split())


@pytest.mark.parametrize("module", SUBCOMMAND_MODULES)
def test_subcommand_modules_do_not_import_the_cli_that_imports_them(module: str) -> None:
    """Imports point down: the CLI imports its subcommands, never the other way round (no import cycle); what
    they share is in `cli.arguments`. Read from the source: importing a submodule always runs the package."""
    tree = ast.parse(Path(cli.__file__).with_name(f"{module}.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert "mcp_server_connectwise.cli" not in imported


@pytest.mark.parametrize(
    "argv",
    [
        ["serve"],
        ["demo"],
        ["config", "claude-desktop"],
        ["bundle", "build"],
        ["sandbox"],
        ["tenants", "list"],
        ["tokens", "create", "alice", "--tenants", "acme"],
        ["callbacks", "status"],
        ["audit", "verify"],
        ["bench"],
    ],
)
def test_each_subcommand_runs_the_handler_of_its_own_module(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert args.run.__module__ == f"mcp_server_connectwise.cli.{argv[0]}"


def test_every_module_of_the_cli_but_its_shared_arguments_is_a_subcommand() -> None:
    modules = {path.stem for path in Path(cli.__file__).parent.glob("*.py")} - {"__init__", "arguments"}
    assert (
        modules == {subcommand.__name__.rsplit(".", 1)[1] for subcommand in cli.SUBCOMMANDS} == set(SUBCOMMAND_MODULES)
    )


def test_importing_the_cli_and_building_its_parser_is_cheap() -> None:
    loaded = modules_loaded_by("from mcp_server_connectwise.cli import build_parser\nbuild_parser()")
    assert [name for name in HEAVY if name in loaded] == []


def test_tenants_list_does_not_import_the_mcp_sdk(tmp_path: Path) -> None:
    config = tmp_path / "tenants.toml"
    config.write_text(
        '[tenants.acme]\ncompany_id = "acme"\nclient_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"\nsite = "api-na.myconnectwise.net"\n'
    )
    code = (
        "import keyring\nfrom keyring.backends.fail import Keyring\nkeyring.set_keyring(Keyring())\n"
        "from mcp_server_connectwise.cli import main\n"
        f"try:\n    main(['--config', {str(config)!r}, 'tenants', 'list'])\nexcept SystemExit:\n    pass"
    )
    loaded = modules_loaded_by(code)
    assert "mcp_server_connectwise.config" in loaded  # it did run
    assert "mcp" not in loaded and "mcp_server_connectwise.server" not in loaded
