from mcp_server_connectwise.cli import main

main()
