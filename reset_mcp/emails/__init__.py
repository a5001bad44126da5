"""The email kinds: one module each, and a registry."""
