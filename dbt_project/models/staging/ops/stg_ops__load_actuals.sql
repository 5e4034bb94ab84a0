-- The load that happened per series (region x segment) and quarter-hour: the VEE series the forecast
-- model learns from, on the forecasts' grid (metrify_assets/forecasting/inputs.py).
select
    region,
    segment,
    {{ to_utc('reading_start') }} as reading_start_utc,
    local_date,
    energy_kwh,
    {{ to_utc('loaded_at') }} as loaded_at_utc
from {{ source('ops', 'load_actuals') }}
