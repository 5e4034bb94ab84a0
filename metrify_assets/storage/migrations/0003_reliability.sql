-- Migration 0003: dead-letter replay, run-failure alerts, and Kafka delivery.

-- A Kafka batch is done when its dead letters are sent and its offset committed, after the
-- transaction that wrote its ledger row: until then the sensor may request its range again.
ALTER TABLE ops.ingest_ledger ADD COLUMN delivered_at timestamptz;
UPDATE ops.ingest_ledger SET delivered_at = processed_at WHERE origin = 'kafka';

-- A quarantined record keeps its version (Kafka offset, landing seq) so a replay cannot overwrite a
-- newer reading, and says when a replay accepted it (and under which batch). Rows quarantined before
-- this migration have no version: a replay gives them version 0, the oldest.
ALTER TABLE ops.quarantine
    ADD COLUMN record_version bigint,
    ADD COLUMN resolved_at    timestamptz,
    ADD COLUMN resolved_by    text,                 -- the replay batch that accepted the record
    ADD COLUMN replays        integer NOT NULL DEFAULT 0;
CREATE INDEX quarantine_unresolved ON ops.quarantine (source, quarantined_at) WHERE resolved_at IS NULL;

-- Runs that failed for good (a system error after its retries, or a bug): one row per run, written
-- by `run_failure_alert_sensor`.
CREATE TABLE ops.run_alerts (
    run_id      text PRIMARY KEY,
    job_name    text        NOT NULL,
    batch_id    text,                             -- the ingest run's batch, when it has one
    step_key    text,
    error_type  text        NOT NULL,
    message     text        NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
