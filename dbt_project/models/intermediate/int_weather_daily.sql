-- Daily weather per station on the local calendar of the meters it serves (UTC when it serves none),
-- so weather days line up with consumption days.
with observations as (
    select * from {{ ref('stg_ops__weather_observations') }}
),

station_timezones as (
    select * from {{ ref('int_weather_station_timezones') }}
),

localized as (
    select
        o.station_id,
        {{ local_date('o.observed_at_utc', "coalesce(t.timezone, 'UTC')") }} as local_date,
        o.temperature_c,
        o.precipitation_mm
    from observations as o
    left join station_timezones as t on o.station_id = t.station_id
)

select
    station_id,
    local_date,
    avg(temperature_c) as mean_temperature_c,
    min(temperature_c) as min_temperature_c,
    max(temperature_c) as max_temperature_c,
    sum(precipitation_mm) as precipitation_mm,
    count(*) as observation_count
from localized
group by station_id, local_date
