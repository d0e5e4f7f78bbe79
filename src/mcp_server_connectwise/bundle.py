"""The MCP Bundle (MCPB, manifest v0.4) that installs this server in Claude Desktop with a double click.

`mcp-server-connectwise bundle build` writes the bundle's directory - `manifest.json`, this package's source,
its `pyproject.toml` and readme - into `dist/` of the checkout; the official CLI packs it
(`npx @anthropic-ai/mcpb pack`). The manifest's tools are the registry's, never listed by hand.

Server type `uv`, not bundled dependencies (type `python`): pydantic-core, cryptography (keyring's Secret
Service backend) and their like are compiled per platform and Python version, so a bundle carrying them would
start only on the OS it was built on. With `uv`, the host's uv installs a Python and the dependencies from the
bundle's `pyproject.toml` for the machine it runs on - macOS, Windows or Linux alike.

The host starts `bundle serve` with the user's settings (`user_config`): the path of a tenants.toml (none: the
embedded demo, which says so), the default tenant and a read-only switch. API keys are no setting: they stay
in the OS keyring (`tenants set-keys`), never in the bundle's config or environment.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

PACKAGE = "mcp_server_connectwise"
MANIFEST_VERSION = "0.4"
# The pinned official CLI that validates and packs the bundle (.ci/run installs the same version).
MCPB_CLI = "@anthropic-ai/mcpb@2.1.2"
SERVE = ("bundle", "serve")  # the subcommand the host starts (cli/bundle.py)

# What the host asks the user for, and the `bundle serve` option each value is passed as.
USER_CONFIG: dict[str, dict[str, Any]] = {
    "tenants_config": {
        "type": "file",
        "title": "tenants.toml",
        "description": (
            "Your tenants (`mcp-server-connectwise tenants init` writes one; API keys stay in the OS keyring, "
            "stored with `tenants set-keys`). Leave empty to try the built-in demo sandbox (made-up data)."
        ),
        "required": False,
    },
    "default_tenant": {
        "type": "string",
        "title": "Default tenant",
        "description": "The tenant a request works in when it names none (default: the file's default_tenant).",
        "required": False,
    },
    "read_only": {
        "type": "boolean",
        "title": "Read-only",
        "description": "Offer only the tools that read: nothing is ever written to ConnectWise.",
        "default": False,
        "required": False,
    },
}
OPTIONS = {"--config": "tenants_config", "--tenant": "default_tenant", "--read-only": "read_only"}


class BundleError(Exception):
    """The bundle cannot be built here: one line saying why."""


def checkout() -> Path:
    """The source checkout this package runs from (an editable install): the bundle carries its files."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if not (root / "src" / PACKAGE).is_dir() or not pyproject.is_file():
        raise BundleError(
            f"the bundle is built from a source checkout, and {Path(__file__).parent} is an installed copy: "
            "run it from a checkout's `pip install -e .`"
        )
    return root


def host_command() -> dict[str, Any]:
    """The manifest's `mcp_config`: uv runs the console script from the unpacked bundle, with the settings."""
    args = ["run", "--directory", "${__dirname}", "--quiet", "mcp-server-connectwise", *SERVE]
    for option, key in OPTIONS.items():
        args += [option, f"${{user_config.{key}}}"]
    return {"command": "uv", "args": args}


def manifest(project: dict[str, Any]) -> dict[str, Any]:
    """The manifest for the package described by `project` (pyproject's [project] table)."""
    from mcp_server_connectwise.toolsets import REGISTRY

    return {
        "manifest_version": MANIFEST_VERSION,
        "name": project["name"],
        "display_name": "ConnectWise PSA",
        "version": project["version"],
        "description": project["description"],
        "author": {"name": f"The {project['name']} authors"},
        "license": project["license"],
        "keywords": ["connectwise", "psa", "msp", "service desk", "tickets"],
        "server": {
            "type": "uv",
            "entry_point": f"src/{PACKAGE}/__main__.py",
            "mcp_config": host_command(),
        },
        "tools": [{"name": tool.name, "description": tool.title} for tool in REGISTRY.tools],
        "tools_generated": False,
        "compatibility": {
            "platforms": ["darwin", "win32", "linux"],
            "runtimes": {"python": project["requires-python"]},
        },
        "user_config": USER_CONFIG,
    }


def build(out: Path | None = None) -> Path:
    """Write the bundle's directory into `out` (default: the checkout's dist/) and return it; one built
    before is replaced."""
    root = checkout()
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    bundle = (out or root / "dist") / project["name"]
    if bundle.exists():
        if not (bundle / "manifest.json").is_file():
            raise BundleError(f"{bundle} exists and holds no bundle, so it was left as it is: give another --out")
        shutil.rmtree(bundle)
    shutil.copytree(
        root / "src" / PACKAGE, bundle / "src" / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    for name in ("pyproject.toml", project["readme"]):  # hatchling reads the readme when uv builds the package
        shutil.copy2(root / name, bundle / name)
    text = json.dumps(manifest(project), indent=2, ensure_ascii=False) + "\n"
    (bundle / "manifest.json").write_text(text, encoding="utf-8")
    return bundle
