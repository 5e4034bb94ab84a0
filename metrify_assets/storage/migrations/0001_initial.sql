-- Migration 0001: the ops schema as first released (PostgreSQL, hot tier). Every statement is
-- IF NOT EXISTS, so a database made before versioned migrations upgrades in place. Never edit an
-- applied migration: add the next one.
CREATE SCHEMA IF NOT EXISTS ops;

-- Meter registry: one row per meter (loaded from the head-end's reference file).
CREATE TABLE IF NOT EXISTS ops.meters (
    meter_id            text PRIMARY KEY,
    segment             text NOT NULL,          -- residential / commercial / industrial
    region              text NOT NULL,
    weather_station_id  text,
    grid_node_id        text,
    tariff              text,
    timezone            text NOT NULL DEFAULT 'Europe/London',
    installed_on        date,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ops.meter_readings (
    meter_id          text        NOT NULL,
    reading_start     timestamptz NOT NULL,
    interval_minutes  integer     NOT NULL,
    energy_kwh        double precision NOT NULL,
    direction         text        NOT NULL DEFAULT 'import',
    register_kwh      double precision,
    voltage_v         double precision,
    power_factor      double precision,
    status_flags      text,                      -- comma-separated flags from the head-end
    source            text,
    record_version    bigint      NOT NULL,      -- newer version replaces older
    batch_id          text        NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    quality_flags     text,                      -- reasons a record rule flagged it for review
    PRIMARY KEY (meter_id, reading_start)
);

CREATE TABLE IF NOT EXISTS ops.grid_status (
    grid_node_id    text        NOT NULL,
    measured_at     timestamptz NOT NULL,
    frequency_hz    double precision NOT NULL,
    voltage_v       double precision NOT NULL,
    load_mw         double precision NOT NULL,
    capacity_mw     double precision,
    record_version  bigint      NOT NULL,
    batch_id        text        NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    quality_flags   text,
    PRIMARY KEY (grid_node_id, measured_at)
);

CREATE TABLE IF NOT EXISTS ops.weather_observations (
    station_id        text        NOT NULL,
    observed_at       timestamptz NOT NULL,
    temperature_c     double precision NOT NULL,
    humidity_pct      double precision NOT NULL,
    pressure_hpa      double precision NOT NULL,
    wind_speed_ms     double precision NOT NULL,
    precipitation_mm  double precision NOT NULL,
    record_version    bigint      NOT NULL,
    batch_id          text        NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    quality_flags     text,
    PRIMARY KEY (station_id, observed_at)
);

-- Rejected records, verbatim, with every reason. (batch_id, record_index) makes replays idempotent.
CREATE TABLE IF NOT EXISTS ops.quarantine (
    batch_id        text        NOT NULL,
    record_index    integer     NOT NULL,
    source          text        NOT NULL,
    payload         text        NOT NULL,
    reasons         text        NOT NULL,        -- comma-separated reason codes
    quarantined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, record_index)
);

-- Accepted records that a rule flagged: reviewers approve or reject them.
CREATE TABLE IF NOT EXISTS ops.review_queue (
    batch_id        text        NOT NULL,
    record_index    integer     NOT NULL,
    source          text        NOT NULL,
    record_key      text        NOT NULL,        -- natural key, e.g. "MTR-00001|2026-03-29T01:00:00+00:00"
    reasons         text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending',  -- pending / approved / rejected
    decided_by      text,
    decided_at      timestamptz,
    decision_note   text,
    flagged_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, record_index)
);
-- Every batch asks whether its keys were rejected before: rejections are few, so index only those.
CREATE INDEX IF NOT EXISTS review_queue_rejected_keys
    ON ops.review_queue (source, record_key) WHERE status = 'rejected';

-- One row per ingested batch: input = accepted + quarantined, reconcilable per batch.
CREATE TABLE IF NOT EXISTS ops.ingest_ledger (
    batch_id       text PRIMARY KEY,
    source         text        NOT NULL,
    origin         text        NOT NULL,         -- landing / kafka
    origin_ref     text        NOT NULL,         -- file name or topic-partition-start-end
    raw_key        text        NOT NULL,         -- lake key of the immutable raw batch
    records_in     integer     NOT NULL,
    accepted       integer     NOT NULL,
    flagged        integer     NOT NULL,         -- a subset of accepted
    quarantined    integer     NOT NULL,
    quality_score  double precision,
    run_id         text,
    processed_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (records_in = accepted + quarantined),
    CHECK (flagged <= accepted)
);

CREATE TABLE IF NOT EXISTS ops.anomaly_scores (
    meter_id       text        NOT NULL,
    reading_start  timestamptz NOT NULL,
    score          double precision NOT NULL,    -- robust z-score vs the meter's seasonal profile
    is_anomaly     boolean     NOT NULL,
    model_version  text        NOT NULL,
    scored_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, reading_start)
);

CREATE TABLE IF NOT EXISTS ops.enriched_meter_readings (
    meter_id          text        NOT NULL,
    reading_start     timestamptz NOT NULL,
    interval_minutes  integer     NOT NULL,
    energy_kwh        double precision NOT NULL,
    direction         text        NOT NULL,
    segment           text,
    region            text,
    tariff            text,
    tou_period        text        NOT NULL,      -- peak / shoulder / off_peak
    local_date        date        NOT NULL,
    local_hour        integer     NOT NULL,
    temperature_c     double precision,
    anomaly_score     double precision,
    is_anomaly        boolean,
    PRIMARY KEY (meter_id, reading_start)
);

CREATE TABLE IF NOT EXISTS ops.vee_audit (
    meter_id       text        NOT NULL,
    reading_start  timestamptz NOT NULL,
    action         text        NOT NULL,         -- estimated / edited
    method         text        NOT NULL,
    value_before   double precision,
    value_after    double precision,
    reason         text        NOT NULL,
    audited_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, reading_start, action)
);

-- Batches whose quality score fell below the alert threshold (METRIFY_QUALITY_ALERT_THRESHOLD, 95).
CREATE TABLE IF NOT EXISTS ops.quality_alerts (
    batch_id       text PRIMARY KEY,
    source         text        NOT NULL,
    quality_score  double precision NOT NULL,
    threshold      double precision NOT NULL,
    dimensions     text        NOT NULL,         -- JSON: completeness, accuracy, consistency, timeliness
    raised_at      timestamptz NOT NULL DEFAULT now()
);
