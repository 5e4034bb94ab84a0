-- Migration 0016: day-ahead load forecasts per region x segment (forecasting/, asset `load_forecast`).

-- Every quarter-hour of a forecast day by every method: the model (when it could be fitted) and the
-- baselines, so the marts can score each against the actuals; `selected` marks the method the
-- backtest chose for the series (the model only where it beat every baseline).
CREATE TABLE ops.load_forecasts (
    region          text        NOT NULL,
    segment         text        NOT NULL,
    reading_start   timestamptz NOT NULL,   -- the quarter-hour forecast
    local_date      date        NOT NULL,   -- the forecast day, in the series' timezone
    issued_for      date        NOT NULL,   -- the day partition whose data made it (local_date - 1)
    horizon_hour    integer     NOT NULL CHECK (horizon_hour BETWEEN 0 AND 24),
    method          text        NOT NULL CHECK (method IN ('model', 'seasonal_naive', 'weekday_mean', 'persistence')),
    p10_kwh         double precision,
    p50_kwh         double precision,
    p90_kwh         double precision,
    selected        boolean     NOT NULL,
    model_version   text        NOT NULL,
    forecast_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region, segment, reading_start, method)
);
CREATE INDEX load_forecasts_local_date ON ops.load_forecasts (local_date);

-- Per series and forecast day: the rolling backtest behind the choice, one row per method.
CREATE TABLE ops.load_forecast_backtests (
    region          text        NOT NULL,
    segment         text        NOT NULL,
    local_date      date        NOT NULL,   -- the forecast day the backtest chose a method for
    method          text        NOT NULL CHECK (method IN ('model', 'seasonal_naive', 'weekday_mean', 'persistence')),
    origins         integer     NOT NULL CHECK (origins >= 0),  -- backtested days
    intervals       integer     NOT NULL CHECK (intervals >= 0),  -- quarter-hours scored
    mae_kwh         double precision,
    mape_pct        double precision,
    smape_pct       double precision,
    coverage        double precision,       -- share of actuals inside P10..P90
    selected        boolean     NOT NULL,
    model_version   text        NOT NULL,
    forecast_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region, segment, local_date, method)
);

-- What happened, on the forecasts' grid: per series and quarter-hour, the load the model learns from
-- (forecasting/inputs.py: the VEE series summed per region x segment), written by the run whose
-- partition is that local day, so the marts can score each forecast against it. A series' local day
-- is replaced whole; intervals without a value are not stored.
CREATE TABLE ops.load_actuals (
    region          text        NOT NULL,
    segment         text        NOT NULL,
    reading_start   timestamptz NOT NULL,   -- the quarter-hour
    local_date      date        NOT NULL,   -- its day in the series' timezone
    energy_kwh      double precision,       -- net load (negative = export)
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region, segment, reading_start)
);
CREATE INDEX load_actuals_local_date ON ops.load_actuals (local_date);
