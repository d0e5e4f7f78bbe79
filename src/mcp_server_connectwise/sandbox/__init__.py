"""A faithful local ConnectWise Manage service desk (ASGI) for the demo, the tests and the benchmarks."""

from mcp_server_connectwise.sandbox.app import create_app
from mcp_server_connectwise.sandbox.settings import SANDBOX_BASE_URL, SandboxSettings

__all__ = ["SANDBOX_BASE_URL", "SandboxSettings", "create_app"]
