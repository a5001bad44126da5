"""reset-mcp: password resets for AI agents, with signed one-time tokens and human oversight."""

__version__ = "0.1.0"
