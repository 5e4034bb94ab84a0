-- Migration 0020: which days the refresh rebuilt, as of which transactions, so the lifecycle keeps a
-- day's hot rows while a rebuild of it is owed (docs/lifecycle.md#rebuild-owed).

-- The transaction that stamped a touched day. Rows stamped before this migration have none: they count
-- as rebuilt (nothing recorded which of them were), as every row stamped from now on is not until a
-- refreshed asset's run whose snapshot saw its transaction committed (`storage/rebuilt.py`).
ALTER TABLE ops.ingest_days ADD COLUMN xact xid8;
ALTER TABLE ops.ingest_days ALTER COLUMN xact SET DEFAULT pg_current_xact_id();
ALTER TABLE ops.retouched_days ADD COLUMN xact xid8;
ALTER TABLE ops.retouched_days ALTER COLUMN xact SET DEFAULT pg_current_xact_id();
-- The lifecycle asks about the days it is about to trim, not the history.
CREATE INDEX ingest_days_day ON ops.ingest_days (day);
CREATE INDEX retouched_days_day ON ops.retouched_days (day);

-- Per refreshed asset and day, its newest successful run: when it began and the snapshot it began
-- with (a touch whose transaction that snapshot saw committed was read by the run).
CREATE TABLE ops.rebuilt_days (
    asset     text        NOT NULL,
    day       date        NOT NULL,
    began_at  timestamptz NOT NULL,
    snapshot  pg_snapshot NOT NULL,
    PRIMARY KEY (asset, day)
);
