"""Anomaly scores per meter reading."""
