-- One row per version of a meter's registry entry (SCD type 2, from the `snp_ops__meters` snapshot):
-- a meter swap or tariff change closes the old version (`valid_to_utc`) and opens a new one. The
-- first version is valid from the beginning of time, so every reading finds its meter version.
-- The reading span adds up `int_meter_reading_days` (incremental, per meter and local day), not
-- ops.meter_readings itself: it still counts the readings the data lifecycle archived out of `ops`.
{{ config(indexes=[{'columns': ['meter_id', 'version_number']}]) }}
with versions as (
    select
        *,
        row_number() over (partition by meter_id order by dbt_valid_from) as version_number
    from {{ ref('snp_ops__meters') }}
),

reading_span as (
    select
        meter_id,
        min(first_reading_utc) as first_reading_utc,
        max(last_reading_utc) as last_reading_utc,
        cast(sum(reading_count) as {{ dbt.type_bigint() }}) as reading_count
    from {{ ref('int_meter_reading_days') }}
    group by meter_id
)

select
    v.dbt_scd_id as meter_version_key,
    v.meter_id,
    v.version_number,
    v.segment,
    v.region,
    v.weather_station_id,
    v.grid_node_id,
    v.tariff,
    v.timezone,
    v.installed_on,
    -- The snapshot's validity stamps are naive session-zone times (macros/timestamps.sql).
    case when v.version_number = 1 then cast('1900-01-01' as {{ dbt.type_timestamp() }})
         else {{ snapshot_time_to_utc('v.dbt_valid_from') }} end as valid_from_utc,
    {{ snapshot_time_to_utc('v.dbt_valid_to') }} as valid_to_utc,
    v.dbt_valid_to is null as is_current,
    s.first_reading_utc,
    s.last_reading_utc,
    coalesce(s.reading_count, 0) as reading_count
from versions as v
left join reading_span as s on v.meter_id = s.meter_id
