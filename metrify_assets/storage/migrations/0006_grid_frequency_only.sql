-- Migration 0006: grid feeds that publish frequency alone.
-- Voltage and load became optional in the grid contract (v1, compatible): a frequency-only sample is
-- stored with both null instead of being quarantined as malformed.
ALTER TABLE ops.grid_status ALTER COLUMN voltage_v DROP NOT NULL, ALTER COLUMN load_mw DROP NOT NULL;
