"""Where the tests find the repository and their own data (copies of ConnectWise's reference material)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONNECTWISE_DATA = REPO_ROOT / "tests" / "data" / "connectwise"
SCHEMAS_DIR = CONNECTWISE_DATA / "schemas"
EXAMPLES_DIR = CONNECTWISE_DATA / "examples"
# tenants.example.toml ships inside the package (`tenants init` writes it out); this is its one copy.
EXAMPLE_CONFIG = REPO_ROOT / "src" / "mcp_server_connectwise" / "config" / "tenants.example.toml"
