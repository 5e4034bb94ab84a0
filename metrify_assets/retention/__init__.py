"""Archive tiers: hot (PostgreSQL) -> warm/cold/archive (lake Parquet)."""
