-- Day-ahead load forecasts against what happened: every quarter-hour of a series' forecast day by
-- every method, with the actual once the day's own load_forecast partition has run (null before),
-- the P50's error and whether the actual fell inside P10..P90.
-- Incremental by series-day (macros/forecast_window.sql): a run rebuilds only the forecast days whose
-- forecasts or actuals changed, so its work follows the new days, not the forecasts held.
-- Indexed on the API's page order (reading_start_utc, ...), which the API's forecast-day filter also
-- bounds in UTC a day wider (serving/datasets.py `bounds_utc`: PostgreSQL does not know the two go
-- together), and on the forecast day, which the incremental delete selects (docs/warehouse.md, Indexes).
{{ config(
    materialized='incremental',
    unique_key=['region', 'segment', 'local_date'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[
        {'columns': ['reading_start_utc', 'region', 'segment', 'method']},
        {'columns': ['local_date', 'region', 'segment']},
    ],
) }}
-- kWh to 6 decimals (macros/math.sql `rounded`): the forecasts are a model's doubles (2.9637000000000002),
-- and the error is the difference of the rounded values, in decimals (exact_difference), so it is the
-- actual minus the P50 as served (-0.0151, not -0.015099999999999891); coverage compares them too.
-- The forecasts' other columns come as staging has them (macros/columns.sql `star`); the select below
-- names the mart's columns in its contract's order.
with forecasts as (
    select
        {{ star(ref('stg_ops__load_forecasts'), except=['p10_kwh', 'p50_kwh', 'p90_kwh']) }},
        {{ rounded('p10_kwh') }} as p10_kwh,
        {{ rounded('p50_kwh') }} as p50_kwh,
        {{ rounded('p90_kwh') }} as p90_kwh
    from {{ ref('stg_ops__load_forecasts') }}
    where {{ forecast_window('local_date') }}
),

actuals as (
    select
        region,
        segment,
        reading_start_utc,
        {{ rounded('energy_kwh') }} as energy_kwh,
        loaded_at_utc
    from {{ ref('stg_ops__load_actuals') }}
    where {{ forecast_window('local_date') }}
)

select
    f.region,
    f.segment,
    f.reading_start_utc,
    f.method,
    f.issued_for,
    f.local_date,
    cast(f.horizon_hour as integer) as horizon_hour,
    f.p10_kwh,
    f.p50_kwh,
    f.p90_kwh,
    f.selected,
    f.model_version,
    a.energy_kwh as actual_kwh,
    {{ exact_difference('a.energy_kwh', 'f.p50_kwh') }} as error_kwh,
    abs({{ exact_difference('a.energy_kwh', 'f.p50_kwh') }}) as abs_error_kwh,
    -- unknown until the actual is known, where the method made no forecast (no P50), as
    -- fct_forecast_accuracy scores only those intervals, and where it gave a point forecast (no
    -- P10..P90: a baseline without errors of its own to size one), which no coverage counts
    case
        when a.energy_kwh is null or f.p50_kwh is null or f.p10_kwh is null or f.p90_kwh is null then null
        else a.energy_kwh between f.p10_kwh and f.p90_kwh
    end as within_p10_p90,
    f.forecast_at_utc,
    case
        when a.loaded_at_utc > f.forecast_at_utc then a.loaded_at_utc else f.forecast_at_utc
    end as last_changed_at_utc
from forecasts as f
left join actuals as a
    on a.region = f.region
    and a.segment = f.segment
    and a.reading_start_utc = f.reading_start_utc
