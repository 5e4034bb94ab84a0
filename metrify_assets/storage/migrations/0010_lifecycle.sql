-- Migration 0010: the data lifecycle (docs/lifecycle.md): where each day of each tiered dataset is,
-- legal holds, and a log of every lifecycle action.

-- One row per dataset and day once the day has a verified copy in the lake. `tier` is the tier of
-- that copy (warm: S3 STANDARD, cold: STANDARD_IA, archive: GLACIER or DEEP_ARCHIVE); the hot rows
-- in PostgreSQL stay until `hot_deleted_at`. `checksum` is the content checksum of the rows the copy
-- holds, as recorded in the manifest beside it.
CREATE TABLE IF NOT EXISTS ops.lifecycle_days (
    dataset              text        NOT NULL,
    day                  date        NOT NULL,
    tier                 text        NOT NULL CHECK (tier IN ('warm', 'cold', 'archive')),
    storage_class        text        NOT NULL,
    object_key           text        NOT NULL,
    manifest_key         text        NOT NULL,
    row_count            bigint      NOT NULL,
    bytes                bigint      NOT NULL,
    checksum             text        NOT NULL,  -- content checksum of the rows (lifecycle/checksum.py)
    sha256               text        NOT NULL,  -- of the object's bytes
    verified_at          timestamptz NOT NULL,
    moved_at             timestamptz NOT NULL,  -- when the copy reached `tier`
    hot_deleted_at       timestamptz,           -- null: the rows are (also) still hot
    hot_rows_deleted     bigint,
    kept_checksum        text,                  -- of the rows a meter-scoped hold kept hot (in the copy too)
    restored_at          timestamptz,           -- brought back to the hot tier by `metrify restore`
    keep_hot_until       date,                  -- a restored day stays hot until then
    restore_requested_at timestamptz,           -- an archive restore asked for, not yet read
    PRIMARY KEY (dataset, day)
);
CREATE INDEX IF NOT EXISTS lifecycle_days_tier ON ops.lifecycle_days (tier, day);

-- Legal holds: a scope (dataset or 'all', optional meter, days) that no rule may delete or expire.
CREATE TABLE IF NOT EXISTS ops.legal_holds (
    hold_id        bigserial   PRIMARY KEY,
    dataset        text        NOT NULL,
    meter_id       text,                    -- null: every meter (every row of the days)
    first_day      date        NOT NULL,
    last_day       date        NOT NULL,
    reason         text        NOT NULL CHECK (length(trim(reason)) > 0),
    author         text        NOT NULL CHECK (length(trim(author)) > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    objects_locked integer     NOT NULL DEFAULT 0,  -- lake objects given an Object Lock legal hold
    released_at    timestamptz,
    released_by    text,
    release_note   text,
    CHECK (first_day <= last_day)
);
CREATE INDEX IF NOT EXISTS legal_holds_active ON ops.legal_holds (dataset, first_day, last_day)
    WHERE released_at IS NULL;

-- Every lifecycle action, applied or (dry run) planned: copies, verifications, transitions, hot
-- deletions, expirations, holds, restores, rollbacks, and what a hold kept.
CREATE TABLE IF NOT EXISTS ops.lifecycle_log (
    log_id   bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    run_id   text,
    dataset  text        NOT NULL,
    day      date,
    action   text        NOT NULL,
    detail   text,
    rows     bigint,
    bytes    bigint,
    dry_run  boolean     NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS lifecycle_log_day ON ops.lifecycle_log (dataset, day);
