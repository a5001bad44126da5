"""The MCP and HTTP edge: the only package that imports mcp, starlette or uvicorn."""
