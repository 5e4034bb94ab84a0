-- Migration 0031: a quarantined record's natural key (quality/quarantine.py, docs/reliability.md#dead-letters).
-- A later batch that stores an accepted record for the key resolves the row as `superseded by <batch>`:
-- a corrected file settles the rejects of the file it corrects, and a resend does not count its bad
-- rows again. The partial index holds only rows that wait, so each batch probes it with its own keys.
-- Rows quarantined before this migration have no key and wait for a replay or a discard as before.
ALTER TABLE ops.quarantine ADD COLUMN IF NOT EXISTS record_key text;
CREATE INDEX IF NOT EXISTS quarantine_waiting_key ON ops.quarantine (source, record_key)
    WHERE resolved_at IS NULL AND record_key IS NOT NULL;
