-- Migration 0008: declared backfills are not late.
-- A landing file or Kafka message can be declared history (a backfill); its records are not scored
-- for timeliness. The ledger keeps how many records of each batch were declared so, and the batch's
-- timeliness (null when nothing in it was live), beside the score it went into.
ALTER TABLE ops.ingest_ledger
    ADD COLUMN IF NOT EXISTS backfill_records integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS timeliness double precision;
