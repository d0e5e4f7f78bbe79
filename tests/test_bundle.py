"""The MCPB bundle: its manifest (tools from the registry, settings without keys), what `bundle serve` makes of
the settings as a host passes them, and the packed bundle started the way the host starts it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from mcp_server_connectwise.bundle import MANIFEST_VERSION, PACKAGE, BundleError, build
from mcp_server_connectwise.cli.bundle import DEMO_NOTICE
from mcp_server_connectwise.server import build_demo_server

from support.registry import READS, TOOLS

MCPB = os.environ.get("MCPB_BIN") or shutil.which("mcpb")
UV = shutil.which("uv")
needs_the_official_cli_and_uv = pytest.mark.skipif(
    not (MCPB and UV) and not os.environ.get("CI"),
    reason="needs the mcpb CLI (MCPB_BIN) and uv: `.ci/run` installs both",
)
KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}  # never the machine's (see conftest)
TENANTS = (
    '[tenants.acme]\ncompany_id = "acme"\nclient_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"\n'
    'site = "api-na.myconnectwise.net"\n'
)


def manifest_of(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))


def as_the_host_starts_it(manifest: dict, bundle: Path, settings: dict[str, Any]) -> tuple[str, list[str]]:
    """The command and arguments of `mcp_config`, substituted as an MCPB host does it (the rules of
    @anthropic-ai/mcpb's getMcpConfigForManifest): the manifest's defaults under the user's settings, booleans as
    "true"/"false", `${__dirname}` the unpacked bundle; an argument that is a setting without a value keeps its
    placeholder."""
    values = {key: option["default"] for key, option in manifest["user_config"].items() if "default" in option}
    values |= settings
    variables = {"__dirname": str(bundle)} | {
        f"user_config.{key}": {True: "true", False: "false"}.get(value, str(value)) for key, value in values.items()
    }

    def substituted(text: str) -> str:
        for name, value in variables.items():
            text = text.replace("${" + name + "}", value)
        return text

    config = manifest["server"]["mcp_config"]
    args = []
    for arg in config["args"]:
        setting = re.fullmatch(r"\$\{(user_config\.[^}]+)\}", arg)
        args.append((variables.get(setting[1]) or arg) if setting else substituted(arg))
    return substituted(config["command"]), args


async def listing(command: str, args: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """tools/list of the server `command` starts over stdio, as {name: title}, and its instructions."""
    async with Client(StdioServerParameters(command=command, args=args, env={**KEYRING, **(env or {})})) as client:
        tools = {tool.name: tool.title for tool in (await client.list_tools()).tools}
        return tools, client.instructions or ""


def console_script() -> str:
    script = shutil.which("mcp-server-connectwise", path=str(Path(sys.executable).parent))
    assert script
    return script


async def test_the_manifest_lists_the_tools_the_server_lists(tmp_path):
    manifest = manifest_of(build(tmp_path))
    async with Client(build_demo_server(tmp_path / "audit.jsonl")) as client:
        listed = {tool.name: tool.title for tool in (await client.list_tools()).tools}
    assert {tool["name"]: tool["description"] for tool in manifest["tools"]} == listed
    assert set(listed) == TOOLS and manifest["tools_generated"] is False
    assert manifest["manifest_version"] == MANIFEST_VERSION and manifest["server"]["type"] == "uv"


def test_no_api_key_is_a_setting_and_none_goes_into_the_environment(tmp_path):
    manifest = manifest_of(build(tmp_path))
    settings = manifest["user_config"]
    assert set(settings) == {"tenants_config", "default_tenant", "read_only"}
    assert not any(option.get("sensitive") for option in settings.values())
    assert "env" not in manifest["server"]["mcp_config"]
    assert "tenants set-keys" in settings["tenants_config"]["description"]  # where the keys go instead


def test_the_bundle_carries_the_package_and_what_builds_it_and_no_caches(tmp_path):
    bundle = build(tmp_path)
    assert sorted(path.name for path in bundle.iterdir()) == ["README.md", "manifest.json", "pyproject.toml", "src"]
    assert (bundle / "src" / PACKAGE / "__main__.py").is_file()
    assert manifest_of(bundle)["server"]["entry_point"] == f"src/{PACKAGE}/__main__.py"
    assert not list(bundle.rglob("__pycache__")) and not list(bundle.rglob("*.pyc"))


def test_a_build_replaces_its_own_bundle_and_refuses_any_other_directory(tmp_path):
    first = build(tmp_path)
    (first / "stale.txt").write_text("from an older build")
    assert build(tmp_path) == first and not (first / "stale.txt").exists()
    other = tmp_path / "elsewhere"
    (other / first.name).mkdir(parents=True)
    (other / first.name / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="holds no bundle, so it was left as it is"):
        build(other)
    assert (other / first.name / "notes.txt").read_text() == "mine"


def served_directly(manifest: dict, bundle: Path, settings: dict[str, Any]) -> tuple[str, list[str]]:
    """The host's arguments for `bundle serve`, run by this installation's console script instead of uv."""
    _, args = as_the_host_starts_it(manifest, bundle, settings)
    return console_script(), args[args.index("mcp-server-connectwise") + 1 :]


async def test_without_a_tenants_file_the_bundle_serves_the_demo_and_says_so(tmp_path):
    bundle = build(tmp_path)
    manifest = manifest_of(bundle)
    tools, instructions = await listing(*served_directly(manifest, bundle, {}))  # every setting left unset
    assert set(tools) == TOOLS and instructions.endswith(DEMO_NOTICE)
    tools, _ = await listing(*served_directly(manifest, bundle, {"read_only": True, "default_tenant": ""}))
    assert set(tools) == READS


async def test_with_a_tenants_file_the_bundle_serves_its_tenants(tmp_path):
    bundle = build(tmp_path)
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(TENANTS)
    settings = {"tenants_config": str(tenants), "default_tenant": "acme", "read_only": True}
    tools, instructions = await listing(*served_directly(manifest_of(bundle), bundle, settings))
    assert set(tools) == READS and DEMO_NOTICE not in instructions


@needs_the_official_cli_and_uv
async def test_the_packed_bundle_validates_and_starts_as_the_host_starts_it(tmp_path):
    assert MCPB and UV, "CI must provide the mcpb CLI and uv"
    bundle = build(tmp_path / "dist")
    checked = subprocess.run([MCPB, "validate", str(bundle / "manifest.json")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    packed = tmp_path / "connectwise.mcpb"
    done = subprocess.run([MCPB, "pack", str(bundle), str(packed)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and packed.is_file(), done.stdout + done.stderr
    installed = tmp_path / "installed"  # where a host unpacks it
    with zipfile.ZipFile(packed) as archive:
        archive.extractall(installed)
    manifest = manifest_of(installed)
    command, args = as_the_host_starts_it(manifest, installed, {})
    assert command == "uv"
    # The host's own environment (the SDK's default one lacks what uv needs to reach PyPI through this
    # machine's proxy), with uv found where this test found it.
    tools, instructions = await listing(UV, args, env=dict(os.environ))
    assert tools == {tool["name"]: tool["description"] for tool in manifest["tools"]}
    assert instructions.endswith(DEMO_NOTICE)
