"""The MCP server: tools, the caller's identity, confirmation, tool errors."""
