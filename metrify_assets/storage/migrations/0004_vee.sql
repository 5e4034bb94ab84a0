-- Migration 0004: VEE (validation, estimation, editing) of meter intervals, and the billing gate.

-- The billing-grade series: every interval of every meter-day VEE has processed, one row each.
-- energy_kwh follows the message contract's sign (negative only with direction 'export').
CREATE TABLE ops.vee_readings (
    meter_id          text        NOT NULL,
    reading_start     timestamptz NOT NULL,
    local_date        date        NOT NULL,     -- the meter's local day (UTC for unregistered meters)
    interval_minutes  integer     NOT NULL,
    energy_kwh        double precision,         -- the billing value; null when missing or failed
    direction         text        NOT NULL DEFAULT 'import',
    original_kwh      double precision,         -- the value as read; null when none arrived
    status            text        NOT NULL
        CHECK (status IN ('actual', 'estimated', 'edited', 'missing', 'failed')),
    method            text        NOT NULL,     -- actual, linear_interpolation, flat_fill, like_day, ...
    reasons           text        NOT NULL DEFAULT '',  -- VEE reason codes that fired, comma-separated
    rule_version      text        NOT NULL,
    batch_id          text,                     -- the batch of the stored reading, when one arrived
    edited_by         text,                     -- who decided an edit (a reviewer), null otherwise
    processed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, reading_start)
);
CREATE INDEX vee_readings_reading_start_brin ON ops.vee_readings USING brin (reading_start);
CREATE INDEX vee_readings_local_date ON ops.vee_readings (local_date, meter_id);

-- One row per meter-day: interval counts by status, the outage and register findings, and the
-- billing gate's verdict (shares against the configured thresholds).
CREATE TABLE ops.vee_days (
    meter_id             text        NOT NULL,
    local_date           date        NOT NULL,
    timezone             text        NOT NULL,
    interval_minutes     integer     NOT NULL,
    expected_intervals   integer     NOT NULL,
    actual_intervals     integer     NOT NULL,
    estimated_intervals  integer     NOT NULL,
    edited_intervals     integer     NOT NULL,
    missing_intervals    integer     NOT NULL,
    failed_intervals     integer     NOT NULL,
    flagged_intervals    integer     NOT NULL,  -- kept as read, with a flag-severity reason
    actual_kwh           double precision NOT NULL,  -- net energy of actual and edited intervals
    estimated_kwh        double precision NOT NULL,  -- net energy of estimated intervals
    outage               boolean     NOT NULL,  -- a power_fail interval: excluded from like-day profiles
    estimation_skipped   boolean     NOT NULL,  -- too much missing to estimate
    billing_ready        boolean     NOT NULL,
    gate_failures        text        NOT NULL DEFAULT '',  -- which shares broke their threshold
    rule_version         text        NOT NULL,
    processed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, local_date),
    CHECK (expected_intervals = actual_intervals + estimated_intervals + edited_intervals
                                + missing_intervals + failed_intervals)
);
CREATE INDEX vee_days_local_date ON ops.vee_days (local_date);

-- Every change VEE or a reviewer made to an interval's value or status: before and after, how, why,
-- who and when. Migration 0001 created a placeholder keyed by (meter, interval, action) that nothing
-- wrote; an interval can change many times (estimated, then replaced by a late actual, then edited),
-- so the trail is append-only with its own id.
DROP TABLE ops.vee_audit;
CREATE TABLE ops.vee_audit (
    audit_id        bigserial   PRIMARY KEY,
    meter_id        text        NOT NULL,
    reading_start   timestamptz NOT NULL,
    local_date      date        NOT NULL,
    status_before   text,                       -- null the first time VEE saw the interval
    status_after    text        NOT NULL,
    method          text        NOT NULL,
    value_before    double precision,
    value_after     double precision,
    reason          text        NOT NULL,
    rule_version    text        NOT NULL,
    actor           text        NOT NULL,       -- 'vee' or the reviewer who decided
    run_id          text,
    audited_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vee_audit_interval ON ops.vee_audit (meter_id, reading_start, audited_at);
CREATE INDEX vee_audit_local_date ON ops.vee_audit (local_date);
