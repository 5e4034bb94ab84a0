"""The operational schema and the idempotent writes into it."""
