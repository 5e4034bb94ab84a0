"""Meter registry and enrichment of readings (metadata, time-of-use period, weather)."""
