"""The `reset-mcp` command line."""
