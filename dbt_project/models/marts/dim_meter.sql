-- One row per registered meter, with the span of readings the warehouse holds for it.
with meters as (
    select * from {{ ref('stg_ops__meters') }}
),

reading_span as (
    select
        meter_id,
        min(reading_start_utc) as first_reading_utc,
        max(reading_start_utc) as last_reading_utc,
        count(*) as reading_count
    from {{ ref('stg_ops__meter_readings') }}
    group by meter_id
)

select
    m.meter_id,
    m.segment,
    m.region,
    m.weather_station_id,
    m.grid_node_id,
    m.tariff,
    m.timezone,
    m.installed_on,
    s.first_reading_utc,
    s.last_reading_utc,
    coalesce(s.reading_count, 0) as reading_count,
    m.updated_at_utc
from meters as m
left join reading_span as s on m.meter_id = s.meter_id
