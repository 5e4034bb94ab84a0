"""Metrify's native helpers (C): what costs a Python object or call per Kafka record otherwise."""

from metrify_native._records import parse_records

__all__ = ["parse_records"]
