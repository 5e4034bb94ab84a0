-- Migration 0005: the expected-consumption anomaly model (meters/anomaly/) beside its baseline.

-- Per reading: what the model expected, and the robust seasonal baseline's verdict on the same
-- reading (score and is_anomaly stay the scoring model's). Null for rows scored before 0005.
ALTER TABLE ops.anomaly_scores
    ADD COLUMN expected_kwh        double precision,
    ADD COLUMN baseline_score      double precision,  -- null where the baseline has no meter-hour
    ADD COLUMN baseline_is_anomaly boolean;

-- Per meter and local day: actual against expected energy, and the day's score, which finds a
-- meter reading too high or too low for days (a drift or step no single reading shows).
CREATE TABLE ops.anomaly_meter_days (
    meter_id            text        NOT NULL,
    local_date          date        NOT NULL,   -- the meter's local day (UTC for unregistered meters)
    intervals           integer     NOT NULL CHECK (intervals > 0),
    actual_kwh          double precision NOT NULL,
    expected_kwh        double precision NOT NULL,
    ratio               double precision,       -- actual / expected; null when nothing was expected
    score               double precision NOT NULL,  -- median standardised residual over the day's noise
    is_anomaly          boolean     NOT NULL,   -- |score| above the threshold, either direction
    baseline_anomalies  integer     NOT NULL CHECK (baseline_anomalies >= 0),  -- readings the baseline flagged
    model_version       text        NOT NULL,
    scored_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, local_date)
);
CREATE INDEX anomaly_meter_days_local_date ON ops.anomaly_meter_days (local_date);
