"""Alerts: one mechanism for grid states, data quality and pipeline failures, delivered to people."""
