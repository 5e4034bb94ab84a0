-- Migration 0014: when the enrichment asset last wrote each enriched reading, so dbt's source freshness
-- (and the Dagster check it feeds) sees the hourly job stop; the newest interval held could not tell a
-- stopped job from meters that report late. A constant default: no table rewrite on existing rows.
ALTER TABLE ops.enriched_meter_readings ADD COLUMN IF NOT EXISTS enriched_at timestamptz NOT NULL DEFAULT now();
