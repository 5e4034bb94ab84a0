-- The temperature sensitivity of consumption per region, customer segment and as-of local date: an
-- ordinary least-squares fit of the series' daily energy per meter on heating and cooling degree-days
-- over the rolling window of var('weather_sensitivity_window_days') days ending on the as-of date,
--     kwh_import_per_meter = intercept + kwh_per_hdd * HDD + kwh_per_cdd * CDD + error,
-- with standard errors, 95 % confidence intervals (Student's t), R^2 and the sample size.
-- A usable day: the mean kwh_import of the series' billing-ready meter-days (fct_consumption_daily;
-- a partial or gappy day would read as a cold or warm outlier) with the degree-days of
-- fct_weather_impact. Closed form on centred sums (var_pop / covar_pop times n), the same on
-- PostgreSQL and Snowflake; formulas and degenerate cases in docs/weather.md.
-- Incremental by as-of date: a partitioned run (its first and last day: `partition_days`, macros/incremental.sql) rebuilds the as-of dates
-- min_date - 1 .. max_date + window (every window that holds a local day fct_weather_impact rebuilt:
-- the run's UTC days of weather reach the local days either side) and reads the usable days from
-- min_date - window on; without days every as-of date is recomputed.
-- Served without the binary noise of the closed form (macros/math.sql `rounded`): the kWh figures
-- (mean, intercept, residual standard error) and the kWh per degree-day, with their standard errors and
-- interval bounds, to 6 decimals, as the consumption marts' kWh (to the mWh); R^2 and t to 6,
-- as risk scores; the mean degree-days to 4, as fct_weather_impact serves them (`unit_places('weather')`).
-- Each is rounded from the fit in doubles (a bound is b -+ t * se, then rounded), so lower <= estimate
-- <= upper still holds.
{{ config(
    materialized='incremental',
    unique_key=['region', 'segment', 'as_of_date'],
    incremental_strategy='rebuilt_days',
    meta={'rebuilt_days': {'day': 'as_of_date', 'days_before': 1, 'days_after': var('weather_sensitivity_window_days') | int}},
    on_schema_change='fail',
) }}
{%- set window_days = var('weather_sensitivity_window_days') | int %}
{%- set min_days = var('weather_sensitivity_min_days') | int %}
{%- set min_degree_days = var('weather_sensitivity_min_degree_days') | int %}
{%- set degree_day_places = unit_places('weather') %}
{%- set read_window = in_partition_window('local_date', days_before=window_days, days_after=window_days) %}
with as_of_dates as (
    -- One row per region, segment and day with consumption (fct_weather_impact's grain), whether or
    -- not the day itself is usable: the row reports the fit of the window that ends on it.
    select region, segment, local_date as as_of_date
    from {{ ref('fct_weather_impact') }}
    where {{ in_partition_window('local_date', days_before=1, days_after=window_days) }}
),

degree_days as (
    select region, segment, local_date, heating_degree_days as hdd, cooling_degree_days as cdd
    from {{ ref('fct_weather_impact') }}
    where mean_temperature_c is not null and {{ read_window }}
),

consumption as (
    select region, segment, local_date, count(*) as meter_count, avg(kwh_import) as kwh_import_per_meter
    from {{ ref('fct_consumption_daily') }}
    where region is not null and billing_ready and {{ read_window }}
    group by region, segment, local_date
),

usable_days as (
    select c.region, c.segment, c.local_date, c.meter_count, c.kwh_import_per_meter as y, d.hdd, d.cdd
    from consumption as c
    inner join degree_days as d
        on c.region = d.region and c.segment = d.segment and c.local_date = d.local_date
),

-- Per window: n, means, days with positive degree-days, and the centred sums of squares and
-- cross-products S_ab = sum((a - mean a) * (b - mean b)) = n * covar_pop(a, b).
windows as (
    select
        a.region,
        a.segment,
        a.as_of_date,
        count(u.local_date) as n,
        sum(u.meter_count) as meter_days,
        avg(u.y) as mean_y,
        avg(u.hdd) as mean_hdd,
        avg(u.cdd) as mean_cdd,
        sum(case when u.hdd > 0 then 1 else 0 end) as hdd_days,
        sum(case when u.cdd > 0 then 1 else 0 end) as cdd_days,
        count(u.local_date) * var_pop(u.hdd) as s_hh,
        count(u.local_date) * var_pop(u.cdd) as s_cc,
        count(u.local_date) * covar_pop(u.hdd, u.cdd) as s_hc,
        count(u.local_date) * covar_pop(u.y, u.hdd) as s_hy,
        count(u.local_date) * covar_pop(u.y, u.cdd) as s_cy,
        count(u.local_date) * var_pop(u.y) as s_yy
    from as_of_dates as a
    left join usable_days as u
        on u.region = a.region
        and u.segment = a.segment
        and u.local_date <= a.as_of_date
        and u.local_date > {{ dbt.dateadd('day', -1 * window_days, 'a.as_of_date') }}
    group by a.region, a.segment, a.as_of_date
),

models as (
    select
        *,
        case when hdd_days >= {{ min_degree_days }} and s_hh > 0 then 1 else 0 end as use_hdd,
        case when cdd_days >= {{ min_degree_days }} and s_cc > 0 then 1 else 0 end as use_cdd,
        s_hh * s_cc - s_hc * s_hc as det
    from windows
),

statuses as (
    select
        *,
        case
            when n < {{ min_days }} then 'too_few_days'
            when use_hdd + use_cdd = 0 then 'no_degree_day_variation'
            when use_hdd = 1 and use_cdd = 1 and det <= 1e-9 * s_hh * s_cc then 'collinear_degree_days'
            else 'fitted'
        end as fit_status,
        n - 1 - use_hdd - use_cdd as df
    from models
),

slopes as (
    select
        *,
        case
            when fit_status <> 'fitted' or use_hdd = 0 then null
            when use_cdd = 1 then (s_cc * s_hy - s_hc * s_cy) / det
            else s_hy / s_hh
        end as b_hdd,
        case
            when fit_status <> 'fitted' or use_cdd = 0 then null
            when use_hdd = 1 then (s_hh * s_cy - s_hc * s_hy) / det
            else s_cy / s_cc
        end as b_cdd
    from statuses
),

residuals as (
    select
        *,
        case when fit_status = 'fitted' then
            mean_y - coalesce(b_hdd, 0) * mean_hdd - coalesce(b_cdd, 0) * mean_cdd
        end as b_0,
        -- SSE = S_yy - b' S_xy (clipped at 0 against rounding on a perfect fit)
        case when fit_status = 'fitted' then
            {{ positive_part('s_yy - coalesce(b_hdd, 0) * s_hy - coalesce(b_cdd, 0) * s_cy') }}
        end as sse
    from slopes
),

variances as (
    select
        *,
        sse / df as s2,
        case
            when b_hdd is null then null
            when use_cdd = 1 then (sse / df) * s_cc / det
            else (sse / df) / s_hh
        end as var_hdd,
        case
            when b_cdd is null then null
            when use_hdd = 1 then (sse / df) * s_hh / det
            else (sse / df) / s_cc
        end as var_cdd,
        case when fit_status = 'fitted' then
            (sse / df) * (1.0 / n + case
                when use_hdd = 1 and use_cdd = 1 then
                    (mean_hdd * mean_hdd * s_cc + mean_cdd * mean_cdd * s_hh - 2 * mean_hdd * mean_cdd * s_hc) / det
                when use_hdd = 1 then mean_hdd * mean_hdd / s_hh
                else mean_cdd * mean_cdd / s_cc
            end)
        end as var_0
    from residuals
),

with_t as (
    select
        v.*,
        case when v.fit_status = 'fitted' then coalesce(t.t_975, {{ t_critical_975('v.df') }}) end as t_crit
    from variances as v
    left join {{ ref('student_t_critical_values') }} as t on t.df = v.df
)

select
    region,
    segment,
    as_of_date,
    cast({{ dbt.dateadd('day', -1 * (window_days - 1), 'as_of_date') }} as date) as window_start_date,
    as_of_date as window_end_date,
    cast(n as {{ dbt.type_int() }}) as sample_days,
    cast(coalesce(meter_days, 0) as {{ dbt.type_int() }}) as meter_days,
    fit_status,
    case
        when fit_status <> 'fitted' then null
        when use_hdd = 1 and use_cdd = 1 then 'hdd+cdd'
        when use_hdd = 1 then 'hdd'
        else 'cdd'
    end as regressors,
    {{ rounded('mean_y') }} as mean_kwh_import_per_meter,
    {{ rounded('mean_hdd', degree_day_places) }} as mean_heating_degree_days,
    {{ rounded('mean_cdd', degree_day_places) }} as mean_cooling_degree_days,
    {{ rounded('b_0') }} as intercept_kwh,
    {{ rounded('sqrt(var_0)') }} as intercept_se,
    {{ rounded('b_0 - t_crit * sqrt(var_0)') }} as intercept_ci95_lower,
    {{ rounded('b_0 + t_crit * sqrt(var_0)') }} as intercept_ci95_upper,
    {{ rounded('b_hdd') }} as kwh_per_hdd,
    {{ rounded('sqrt(var_hdd)') }} as kwh_per_hdd_se,
    {{ rounded('b_hdd - t_crit * sqrt(var_hdd)') }} as kwh_per_hdd_ci95_lower,
    {{ rounded('b_hdd + t_crit * sqrt(var_hdd)') }} as kwh_per_hdd_ci95_upper,
    {{ rounded('b_cdd') }} as kwh_per_cdd,
    {{ rounded('sqrt(var_cdd)') }} as kwh_per_cdd_se,
    {{ rounded('b_cdd - t_crit * sqrt(var_cdd)') }} as kwh_per_cdd_ci95_lower,
    {{ rounded('b_cdd + t_crit * sqrt(var_cdd)') }} as kwh_per_cdd_ci95_upper,
    {{ rounded("case when fit_status = 'fitted' and s_yy > 0 then 1 - sse / s_yy end") }} as r_squared,
    {{ rounded('sqrt(s2)') }} as residual_se_kwh,
    cast(case when fit_status = 'fitted' then df end as {{ dbt.type_int() }}) as degrees_of_freedom,
    {{ rounded('t_crit') }} as t_critical
from with_t
