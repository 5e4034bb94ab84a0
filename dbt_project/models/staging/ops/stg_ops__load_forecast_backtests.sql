-- The rolling-origin backtest behind each series' forecast day: one row per method with the metrics
-- the choice was made on (metrify_assets/forecasting/backtest.py).
select
    region,
    segment,
    local_date,
    method,
    origins,
    intervals,
    mae_kwh,
    mape_pct,
    smape_pct,
    coverage,
    selected,
    model_version,
    {{ to_utc('forecast_at') }} as forecast_at_utc
from {{ source('ops', 'load_forecast_backtests') }}
