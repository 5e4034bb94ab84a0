"""Metrify's native helpers (C): what costs a Python object or call per Kafka record or decoded
record otherwise."""

from metrify_native._messages import decode_messages
from metrify_native._records import parse_records

__all__ = ["decode_messages", "parse_records"]
