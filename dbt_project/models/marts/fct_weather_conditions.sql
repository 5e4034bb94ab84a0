-- Weather per station and UTC hour: the hour's observations aggregated (mean, min and max temperature,
-- mean and max wind, total precipitation), a temperature band and a wind class on the hour's means, a
-- precipitation class on its total (mm in the hour = mm/h), and extreme-weather flags raised when any
-- observation of the hour reaches the extreme band or class (frost, heat, gale) or the total is heavy
-- rain. Edges: vars from metrify_assets/weather/conditions.py (sources in docs/weather.md).
-- Temperature is always there (the contract requires it); wind, precipitation, humidity and pressure
-- may be null (a station without that instrument): an hour's aggregate is over the observations that
-- carry the measure, null when none does, and its wind or precipitation class is then 'unknown'
-- (its flag false: nothing observed reached the extreme).
-- Incremental by UTC day (the weather partitions): a partitioned run (its first and last day: `partition_days`, macros/incremental.sql) rebuilds
-- exactly those UTC days and reads only their observations. Without days every hour is recomputed:
-- weather rows have no change stamp to go by (a corrected observation keeps its first ingested_at).
-- Either way an incremental run keeps the hours it stored of a UTC day whose observations the data
-- lifecycle deleted from PostgreSQL and no restore brought back (macros/hot_tier.sql).
-- Means, minima and maxima are served to 4 decimals (macros/math.sql `rounded` and `unit_places`:
-- instruments read to 0.1; 3.7 C, not 3.6999999999999997) and the precipitation is the exact sum of
-- the amounts (`exact_sum`: 0.3 mm, not 0.30000000000000004); classes and flags judge those values,
-- so they agree with the figures served.
{{ config(
    materialized='incremental',
    unique_key=['station_id', 'hour_start_utc'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[{'columns': ['station_id', 'hour_start_utc']}],
) }}
{%- set float = dbt.type_float() %}
{%- set places = unit_places('weather') %}
with observations as (
    select
        station_id,
        {{ dbt.date_trunc('hour', 'observed_at_utc') }} as hour_start_utc,
        temperature_c,
        humidity_pct,
        pressure_hpa,
        wind_speed_ms,
        precipitation_mm
    from {{ ref('stg_ops__weather_observations') }}
    where {{ utc_day_bounds('observed_at_utc') }}
        and {{ outside_days_left_hot_tier('weather_observations', 'cast(observed_at_utc as date)') }}
),

hourly as (
    select
        station_id,
        hour_start_utc,
        count(*) as observation_count,
        {{ rounded('avg(temperature_c)', places) }} as mean_temperature_c,
        {{ rounded('min(temperature_c)', places) }} as min_temperature_c,
        {{ rounded('max(temperature_c)', places) }} as max_temperature_c,
        {{ rounded('avg(wind_speed_ms)', places) }} as mean_wind_speed_ms,
        {{ rounded('max(wind_speed_ms)', places) }} as max_wind_speed_ms,
        {{ exact_sum('precipitation_mm') }} as precipitation_mm,
        {{ rounded('avg(humidity_pct)', places) }} as mean_humidity_pct,
        {{ rounded('avg(pressure_hpa)', places) }} as mean_pressure_hpa
    from observations
    group by station_id, hour_start_utc
),

flagged as (
    select
        *,
        case when min_temperature_c < {{ var('weather_cold_from_c') }} then true else false end as is_frost,
        case when max_temperature_c >= {{ var('weather_hot_from_c') }} then true else false end as is_heat,
        case when max_wind_speed_ms >= {{ var('weather_gale_from_ms') }} then true else false end as is_gale,
        case when precipitation_mm > {{ var('weather_moderate_rain_max_mm_h') }} then true else false end as is_heavy_rain
    from hourly
)

select
    station_id,
    hour_start_utc,
    cast(observation_count as {{ dbt.type_int() }}) as observation_count,
    cast(mean_temperature_c as {{ float }}) as mean_temperature_c,
    cast(min_temperature_c as {{ float }}) as min_temperature_c,
    cast(max_temperature_c as {{ float }}) as max_temperature_c,
    cast(mean_wind_speed_ms as {{ float }}) as mean_wind_speed_ms,
    cast(max_wind_speed_ms as {{ float }}) as max_wind_speed_ms,
    cast(precipitation_mm as {{ float }}) as precipitation_mm,
    cast(mean_humidity_pct as {{ float }}) as mean_humidity_pct,
    cast(mean_pressure_hpa as {{ float }}) as mean_pressure_hpa,
    case
        when mean_temperature_c < {{ var('weather_cold_from_c') }} then 'freezing'
        when mean_temperature_c < {{ var('weather_mild_from_c') }} then 'cold'
        when mean_temperature_c < {{ var('weather_warm_from_c') }} then 'mild'
        when mean_temperature_c < {{ var('weather_hot_from_c') }} then 'warm'
        else 'hot'
    end as temperature_band,
    case
        when mean_wind_speed_ms is null then 'unknown'
        when mean_wind_speed_ms < {{ var('weather_light_wind_from_ms') }} then 'calm'
        when mean_wind_speed_ms < {{ var('weather_moderate_wind_from_ms') }} then 'light'
        when mean_wind_speed_ms < {{ var('weather_fresh_wind_from_ms') }} then 'moderate'
        when mean_wind_speed_ms < {{ var('weather_strong_wind_from_ms') }} then 'fresh'
        when mean_wind_speed_ms < {{ var('weather_gale_from_ms') }} then 'strong'
        when mean_wind_speed_ms < {{ var('weather_storm_from_ms') }} then 'gale'
        else 'storm'
    end as wind_class,
    case
        when precipitation_mm is null then 'unknown'
        when precipitation_mm <= 0 then 'none'
        when precipitation_mm <= {{ var('weather_light_rain_max_mm_h') }} then 'light'
        when precipitation_mm <= {{ var('weather_moderate_rain_max_mm_h') }} then 'moderate'
        else 'heavy'
    end as precipitation_class,
    is_frost,
    is_heat,
    is_gale,
    is_heavy_rain,
    case when is_frost or is_heat or is_gale or is_heavy_rain then true else false end as is_extreme_weather
from flagged
