"""The one-line installs the README gives, each into an environment of its own: `uvx --from <checkout>` and
`pipx install <checkout>` give a console script that knows its version and serves the demo's tools."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from mcp import Client, StdioServerParameters

from mcp_server_connectwise import __version__

from support.paths import REPO_ROOT
from support.registry import TOOLS

UVX, PIPX = shutil.which("uvx"), shutil.which("pipx")


def needs(tool: str | None, name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not tool and not os.environ.get("CI"), reason=f"needs {name} on PATH: `.ci/run` installs it from PyPI"
    )


async def demo_tools(command: str, args: list[str], env: dict[str, str]) -> set[str]:
    async with Client(StdioServerParameters(command=command, args=[*args, "demo"], env=env)) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


def isolated(**homes: str) -> dict[str, str]:
    """This environment (uv and pip reach PyPI through it) with the installer's own homes, the test's."""
    return {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", **homes}


@needs(UVX, "uvx")
async def test_uvx_from_the_checkout_runs_the_console_script(tmp_path):
    assert UVX, "CI must provide uvx"
    env = isolated(UV_TOOL_DIR=str(tmp_path / "tools"))
    command = ["--isolated", "--from", str(REPO_ROOT), "mcp-server-connectwise"]  # a fresh environment each run
    version = subprocess.run([UVX, *command, "--version"], capture_output=True, text=True, env=env, timeout=300)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"mcp-server-connectwise {__version__}"
    assert await demo_tools(UVX, command, env) == TOOLS


@needs(PIPX, "pipx")
async def test_pipx_install_from_the_checkout_puts_the_console_script_on_its_path(tmp_path):
    assert PIPX, "CI must provide pipx"
    bin_dir = tmp_path / "bin"
    env = isolated(PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(bin_dir))
    installed = subprocess.run([PIPX, "install", str(REPO_ROOT)], capture_output=True, text=True, env=env, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    script = str(bin_dir / "mcp-server-connectwise")
    version = subprocess.run([script, "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert version.stdout.strip() == f"mcp-server-connectwise {__version__}"
    assert await demo_tools(script, [], env) == TOOLS
