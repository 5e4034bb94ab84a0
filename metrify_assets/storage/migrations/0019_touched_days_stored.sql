-- Migration 0019: a day is touched only by what was stored on it.

-- A batch that stored nothing (every record quarantined) keeps its row in `ops.ingest_days` on its
-- arrival day with 0 records: the day's quality report and VEE's lookup of quarantined readings find
-- the batch through it. It brings nothing new downstream, so `late_days_sensor` and `metrify run`,
-- which read this view, rebuild only the days of rows `stored` (they built the arrival day as an
-- empty day: VEE wrote every registered meter's day as missing, the marts a 0 kWh row for each). The
-- rows that stored nothing stay in the view for their `seq`: the readers' cursors pass them, where
-- a row left out would be a gap in the sequence that holds a cursor back until it settles.
CREATE OR REPLACE VIEW ops.touched_days AS
    SELECT seq, batch_id, source, day, recorded_at, records > 0 AS stored FROM ops.ingest_days
    UNION ALL
    SELECT seq, batch_id, source, day, recorded_at, true AS stored FROM ops.retouched_days;
