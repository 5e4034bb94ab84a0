"""Meters: the registry, readings' local days, enrichment and the anomaly model (VEE comes next)."""
