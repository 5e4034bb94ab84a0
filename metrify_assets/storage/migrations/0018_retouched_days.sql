-- Migration 0018: days a reviewer's decision touched again.

-- A decision on a flagged record changes what its day's VEE series and marts hold, so the day is
-- rebuilt as after a late batch. `ops.ingest_days` keeps each batch's own stamps (a rollback orders
-- batches processed together by their first `seq`); a decision adds a row here instead, numbered from
-- the same sequence, so `ops.touched_days` gives `late_days_sensor` and `metrify run` one `seq` order
-- over both and their one cursor covers both.
CREATE TABLE IF NOT EXISTS ops.retouched_days (
    seq          bigint      PRIMARY KEY DEFAULT nextval(pg_get_serial_sequence('ops.ingest_days', 'seq')),
    batch_id     text        NOT NULL,
    source       text        NOT NULL,
    day          date        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE VIEW ops.touched_days AS
    SELECT seq, batch_id, source, day, recorded_at FROM ops.ingest_days
    UNION ALL
    SELECT seq, batch_id, source, day, recorded_at FROM ops.retouched_days;
