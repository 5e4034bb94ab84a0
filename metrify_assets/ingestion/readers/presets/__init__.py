"""Presets: known file layouts with their own arithmetic (docs/ingest-mapping.md)."""
