-- Consumption against temperature per region, customer segment and local day, with heating and
-- cooling degree-days (bases from the project vars) so analysts can fit each series' temperature
-- sensitivity. Per segment because a region's segments differ by orders of magnitude (an industrial
-- meter draws hundreds of times a household's energy): a per-meter figure over a mixed region would
-- move with its mix of segments, not with the weather. Every segment of a region gets its weather.
-- Both inputs are marts that keep their history when the data lifecycle deletes old days from `ops`:
-- energy from fct_consumption_daily, temperatures from fct_weather_conditions' station-hours put on
-- the local calendar of the meters the station serves (UTC when it serves none). A station-hour
-- belongs to the local day its start falls on, so a station's day is its hours' observations (the mean
-- weighted by each hour's observation count): the same as per observation wherever the offset is
-- whole hours; where it is not (e.g. +05:30), the hour that straddles local midnight counts whole for
-- the day it starts in.
-- Incremental by local day: a partitioned run (its first and last day: `partition_days`, macros/incremental.sql) rebuilds the local days
-- min_date - 1 .. max_date + 1, since the run's UTC days of weather reach into the local days either
-- side; without days every day is recomputed from the two marts.
-- Served without the binary noise of a mean or a quotient (macros/math.sql `rounded`): temperatures and
-- degree-days to 4 decimals (`unit_places('weather')`, as fct_weather_conditions), the kWh per meter to
-- 6 (as the consumption marts' kWh); the degree-days are taken from the rounded mean, so HDD is exactly
-- the base minus the mean served. The energy sums are exact (`exact_sum`).
{{ config(
    materialized='incremental',
    unique_key=['local_date'],
    incremental_strategy='rebuilt_days',
    meta={'rebuilt_days': {'day': 'local_date', 'days_before': 1, 'days_after': 1}},
    on_schema_change='fail',
    indexes=[{'columns': ['local_date', 'region', 'segment']}],
) }}
{%- set places = unit_places('weather') %}
with consumption as (
    select
        d.region,
        d.segment,
        d.local_date,
        count(distinct d.meter_id) as meter_count,
        {{ exact_sum('d.kwh_import') }} as kwh_import,
        {{ exact_sum('d.net_kwh') }} as net_kwh
    from {{ ref('fct_consumption_daily') }} as d
    where d.region is not null and d.interval_count > 0
        and {{ in_partition_window('d.local_date', days_before=1, days_after=1) }}
    group by d.region, d.segment, d.local_date
),

station_timezones as (
    select * from {{ ref('int_weather_station_timezones') }}
),

station_hours as (
    select
        w.station_id,
        {{ local_date('w.hour_start_utc', "coalesce(t.timezone, 'UTC')") }} as local_date,
        w.observation_count,
        w.mean_temperature_c,
        w.min_temperature_c,
        w.max_temperature_c
    from {{ ref('fct_weather_conditions') }} as w
    left join station_timezones as t on w.station_id = t.station_id
    where {{ utc_partition_bounds('w.hour_start_utc', days_before=1, days_after=1) }}
),

station_days as (
    select
        station_id,
        local_date,
        {{ rounded('sum(mean_temperature_c * observation_count) / sum(observation_count)', places) }} as mean_temperature_c,
        min(min_temperature_c) as min_temperature_c,
        max(max_temperature_c) as max_temperature_c
    from station_hours
    where {{ in_partition_window('local_date', days_before=1, days_after=1) }}
    group by station_id, local_date
),

region_stations as (
    select distinct region, weather_station_id as station_id
    from {{ ref('stg_ops__meters') }}
    where weather_station_id is not null
),

region_weather as (
    select
        rs.region,
        w.local_date,
        {{ rounded('avg(w.mean_temperature_c)', places) }} as mean_temperature_c,
        min(w.min_temperature_c) as min_temperature_c,
        max(w.max_temperature_c) as max_temperature_c
    from region_stations as rs
    inner join station_days as w on rs.station_id = w.station_id
    group by rs.region, w.local_date
)

select
    c.region,
    c.segment,
    c.local_date,
    c.meter_count,
    c.kwh_import,
    c.net_kwh,
    {{ rounded(safe_divide('c.kwh_import', 'c.meter_count')) }} as kwh_import_per_meter,
    w.mean_temperature_c,
    w.min_temperature_c,
    w.max_temperature_c,
    {{ rounded(positive_part(var('heating_base_c') ~ ' - w.mean_temperature_c'), places) }} as heating_degree_days,
    {{ rounded(positive_part('w.mean_temperature_c - ' ~ var('cooling_base_c')), places) }} as cooling_degree_days
from consumption as c
left join region_weather as w on c.region = w.region and c.local_date = w.local_date
