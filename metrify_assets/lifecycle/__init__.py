"""The data lifecycle: archive tiers of the lake (hot PostgreSQL -> warm/cold/archive Parquet)."""
