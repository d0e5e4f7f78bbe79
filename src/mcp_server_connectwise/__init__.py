"""mcp-server-connectwise: an MCP server for the ConnectWise PSA service desk."""

__version__ = "0.1.0"
