-- Migration 0029: a corrected file that replaces earlier batches of its source (`metrify ingest
-- --replaces`, docs/ingest-mapping.md#correcting-a-file), and which batch gave each value VEE audits.
--
-- ops.batch_replacements: one row per (replacing batch, replaced batch). The replacing batch is a
-- landing file's, whose id is content-addressed and so known before the file lands; the row is
-- written first, so the batch's own transaction finds it. When that batch is processed it deletes the
-- rows still carrying a replaced batch's id (keys the new file does not store: a wrong meter id, a
-- wrong time), stamps their days in ops.retouched_days, and fills in the counts. A rebuild from raw
-- (lifecycle/rollback.py) withdraws the same rows after replaying the replacing batch.
CREATE TABLE IF NOT EXISTS ops.batch_replacements (
    batch_id      text        NOT NULL,   -- the replacing batch (a landing file)
    replaces      text        NOT NULL,   -- an earlier batch of the same source (ops.ingest_ledger)
    source        text        NOT NULL,
    file_name     text        NOT NULL,   -- the file `metrify ingest` read (the ledger has its landing name)
    requested_by  text        NOT NULL,   -- who ran `metrify ingest --replaces` (audit actor)
    requested_at  timestamptz NOT NULL DEFAULT now(),
    superseded    integer,                -- rows of `replaces` the replacing batch stored again (its version)
    withdrawn     integer,                -- rows of `replaces` it withdrew: keys the new file does not store
    processed_at  timestamptz,            -- when the replacing batch was processed (null: not yet)
    PRIMARY KEY (batch_id, replaces)
);
CREATE INDEX IF NOT EXISTS batch_replacements_replaces ON ops.batch_replacements (replaces);

-- The batches of the value before and after each VEE audit row (ops.vee_readings.batch_id), so a
-- reading a later batch corrected names the batch (and through ops.ingest_ledger the file or Kafka
-- range) that replaced it. NULL for rows written before this migration and for a value no batch
-- gave (an estimate, a removal).
ALTER TABLE ops.vee_audit ADD COLUMN IF NOT EXISTS batch_before text;
ALTER TABLE ops.vee_audit ADD COLUMN IF NOT EXISTS batch_after text;
