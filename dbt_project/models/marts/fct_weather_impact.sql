-- Consumption against temperature per region and local day, with heating and cooling degree-days
-- (bases from the project vars) so analysts can fit each region's temperature sensitivity.
with consumption as (
    select
        d.region,
        d.local_date,
        count(distinct d.meter_id) as meter_count,
        sum(d.kwh_import) as kwh_import,
        sum(d.net_kwh) as net_kwh
    from {{ ref('fct_consumption_daily') }} as d
    where d.region is not null and d.interval_count > 0
    group by d.region, d.local_date
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
        avg(w.mean_temperature_c) as mean_temperature_c,
        min(w.min_temperature_c) as min_temperature_c,
        max(w.max_temperature_c) as max_temperature_c
    from region_stations as rs
    inner join {{ ref('int_weather_daily') }} as w on rs.station_id = w.station_id
    group by rs.region, w.local_date
)

select
    c.region,
    c.local_date,
    c.meter_count,
    c.kwh_import,
    c.net_kwh,
    {{ safe_divide('c.kwh_import', 'c.meter_count') }} as kwh_import_per_meter,
    w.mean_temperature_c,
    w.min_temperature_c,
    w.max_temperature_c,
    {{ positive_part(var('heating_base_c') ~ ' - w.mean_temperature_c') }} as heating_degree_days,
    {{ positive_part('w.mean_temperature_c - ' ~ var('cooling_base_c')) }} as cooling_degree_days
from consumption as c
left join region_weather as w on c.region = w.region and c.local_date = w.local_date
