-- How each method's forecast of a series' day went, beside what its backtest expected: per region,
-- segment, local date and method, the quarter-hours scored (actual and P50 known), MAE, MAPE, sMAPE
-- and P10..P90 coverage, as metrify_assets/forecasting/backtest.py computes them. MAPE skips the
-- intervals whose |actual| is below 5 % of the day's mean |actual| (net load near zero makes a
-- percentage error unbounded). Coverage counts the scored intervals with a P10..P90 only: a point
-- forecast (no interval) is no miss, and a day of them has null coverage. A day not yet realised has
-- 0 intervals scored and null metrics. `selected_by_default` marks the chosen method of a series' day
-- whose backtest could not compare methods (fewer than two scored: a young series), as
-- backtest.compared decides in Python: its selection is persistence by default, not a win. New
-- columns are appended to a table built before them (null on the days not rebuilt since); dbt does not
-- drop or retype a column here, so removing or retyping one needs a full refresh (docs/forecasting.md).
-- Incremental on the same series-days as fct_load_forecast (macros/forecast_window.sql).
{{ config(
    materialized='incremental',
    unique_key=['region', 'segment', 'local_date', 'method'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['local_date', 'region', 'segment', 'method']}],
) }}
with forecasts as (
    select * from {{ ref('fct_load_forecast') }}
    where {{ forecast_window('local_date') }}
),

day_scale as (
    select region, segment, local_date, avg(abs(energy_kwh)) as mean_abs_actual_kwh
    from {{ ref('stg_ops__load_actuals') }}
    where {{ forecast_window('local_date') }}
    group by region, segment, local_date
),

backtest_basis as (
    select region, segment, local_date, count(mae_kwh) >= 2 as compared
    from {{ ref('stg_ops__load_forecast_backtests') }}
    where {{ forecast_window('local_date') }}
    group by region, segment, local_date
),

scored as (
    select
        f.region,
        f.segment,
        f.local_date,
        f.method,
        f.selected,
        f.model_version,
        f.actual_kwh,
        f.p50_kwh,
        f.abs_error_kwh,
        f.within_p10_p90,
        s.mean_abs_actual_kwh,
        f.last_changed_at_utc,
        f.actual_kwh is not null and f.p50_kwh is not null as is_scored
    from forecasts as f
    left join day_scale as s
        on s.region = f.region and s.segment = f.segment and s.local_date = f.local_date
),

days as (
    select
        region,
        segment,
        local_date,
        method,
        selected,
        model_version,
        cast(sum(case when is_scored then 1 else 0 end) as {{ dbt.type_bigint() }}) as intervals_scored,
        -- kWh to 6 decimals, as fct_load_forecast serves them (macros/math.sql `rounded`)
        {{ rounded('avg(case when is_scored then abs_error_kwh end)') }} as mae_kwh,
        cast(100 * avg(
            case when is_scored and abs(actual_kwh) >= {{ var('forecast_mape_floor_share') }} * mean_abs_actual_kwh
                and abs(actual_kwh) > 0
                then abs_error_kwh / abs(actual_kwh) end
        ) as {{ dbt.type_float() }}) as mape_pct,
        cast(100 * avg(
            case when is_scored then
                case when abs(actual_kwh) + abs(p50_kwh) > 0
                    then 2 * abs_error_kwh / (abs(actual_kwh) + abs(p50_kwh)) else 0 end
            end
        ) as {{ dbt.type_float() }}) as smape_pct,
        cast(avg(
            case when within_p10_p90 is not null then {{ indicator('within_p10_p90') }} end
        ) as {{ dbt.type_float() }}) as coverage,
        max(last_changed_at_utc) as last_changed_at_utc
    from scored
    -- a series' day is written whole by one run: selected and model_version are one per method
    group by region, segment, local_date, method, selected, model_version
)

select
    d.region,
    d.segment,
    d.local_date,
    d.method,
    d.selected,
    d.model_version,
    d.intervals_scored,
    d.mae_kwh,
    d.mape_pct,
    d.smape_pct,
    d.coverage,
    {{ rounded('b.mae_kwh') }} as backtest_mae_kwh,
    b.coverage as backtest_coverage,
    cast(b.intervals as {{ dbt.type_bigint() }}) as backtest_intervals,
    d.last_changed_at_utc,
    -- last: a table built before it gets it appended there, so every deployment has one column order
    d.selected and not coalesce(bb.compared, false) as selected_by_default
from days as d
left join {{ ref('stg_ops__load_forecast_backtests') }} as b
    on b.region = d.region
    and b.segment = d.segment
    and b.local_date = d.local_date
    and b.method = d.method
left join backtest_basis as bb
    on bb.region = d.region
    and bb.segment = d.segment
    and bb.local_date = d.local_date
