"""Persistence: the `ops` schema (versioned migrations), its idempotent writes, and lake encodings."""
