-- Day-ahead load forecasts as the load_forecast asset wrote them (metrify_assets/forecasting/,
-- docs/forecasting.md): one row per series (region x segment), quarter-hour and method.
select
    region,
    segment,
    {{ to_utc('reading_start') }} as reading_start_utc,
    local_date,
    issued_for,
    horizon_hour,
    method,
    p10_kwh,
    p50_kwh,
    p90_kwh,
    selected,
    model_version,
    {{ to_utc('forecast_at') }} as forecast_at_utc
from {{ source('ops', 'load_forecasts') }}
