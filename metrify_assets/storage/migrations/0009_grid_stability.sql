-- Migration 0009: grid stability per node and hour, and system-state events (docs/grid.md).
-- Both are written by the `grid_stability` asset per UTC day: re-running a day replaces the hours of
-- that day and the events that started on it.
CREATE TABLE IF NOT EXISTS ops.grid_stability (
    grid_node_id                text             NOT NULL,
    hour_start                  timestamptz      NOT NULL,
    day                         date             NOT NULL,  -- UTC day of hour_start: the partition
    area                        text             NOT NULL,  -- synchronous area whose parameters applied
    sample_count                integer          NOT NULL,
    covered_minutes             double precision NOT NULL,  -- time the samples stand for (gaps excluded)
    mean_deviation_hz           double precision NOT NULL,
    std_deviation_hz            double precision NOT NULL,  -- population standard deviation
    min_deviation_hz            double precision NOT NULL,
    max_deviation_hz            double precision NOT NULL,
    max_abs_deviation_hz        double precision NOT NULL,
    max_abs_steady_state_hz     double precision,           -- null: too few samples for a steady state
    standard_range_hz           double precision NOT NULL,
    share_outside_standard      double precision NOT NULL,  -- share of samples beyond the standard range
    minutes_outside_standard    double precision NOT NULL,
    rocof_max_hz_s              double precision,
    rocof_window_s              double precision,           -- window RoCoF was taken over
    voltage_samples             integer          NOT NULL,
    mean_voltage_v              double precision,
    voltage_windows             integer          NOT NULL,  -- 10-minute voltage means in the hour
    voltage_windows_within      integer          NOT NULL,  -- ... within +/-10 % of nominal
    voltage_within_share        double precision,
    max_voltage_deviation_share double precision,
    voltage_week_windows        integer          NOT NULL,  -- 10-minute means over the 7 days ending `day`
    voltage_week_within_share   double precision,
    voltage_week_compliant      boolean,                    -- EN 50160: >= 95 % within; null without voltage
    mean_load_mw                double precision,
    max_load_mw                 double precision,
    capacity_mw                 double precision,
    min_load_margin_mw          double precision,
    min_load_margin_share       double precision,
    alert_minutes               double precision NOT NULL,
    emergency_minutes           double precision NOT NULL,
    worst_state                 text             NOT NULL CHECK (worst_state IN ('normal', 'alert', 'emergency')),
    risk_frequency              double precision,
    risk_voltage                double precision,
    risk_load                   double precision,
    risk_score                  double precision,           -- null when no component had data
    risk_components             text             NOT NULL,  -- e.g. 'frequency' or 'frequency,voltage,load'
    processed_at                timestamptz      NOT NULL DEFAULT clock_timestamp(),  -- when the row was written (not the transaction start)
    PRIMARY KEY (grid_node_id, hour_start)
);
CREATE INDEX IF NOT EXISTS grid_stability_day ON ops.grid_stability (day);

CREATE TABLE IF NOT EXISTS ops.grid_state_events (
    grid_node_id       text             NOT NULL,
    started_at         timestamptz      NOT NULL,
    ended_at           timestamptz,                 -- null: the state still held at the node's last sample
    state              text             NOT NULL CHECK (state IN ('alert', 'emergency')),
    rule               text             NOT NULL,   -- the rule that put the node in the state
    area               text             NOT NULL,
    start_day          date             NOT NULL,   -- UTC day of started_at: the partition that owns the event
    peak_deviation_hz  double precision NOT NULL,   -- signed deviation of largest magnitude
    processed_at       timestamptz      NOT NULL DEFAULT clock_timestamp(),  -- when the row was last written
    PRIMARY KEY (grid_node_id, started_at),
    CHECK (ended_at IS NULL OR ended_at > started_at)
);
CREATE INDEX IF NOT EXISTS grid_state_events_start_day ON ops.grid_state_events (start_day);
CREATE INDEX IF NOT EXISTS grid_state_events_open ON ops.grid_state_events (grid_node_id) WHERE ended_at IS NULL;
