-- No energy is lost or invented between VEE's billing-grade series and the hourly fact: for every
-- meter and hour still in the hot tier, the fact's totals equal the sums of the intervals with a
-- billing value (the facts also hold hours already archived out of `ops`, which this cannot check).
-- A partitioned run checks its days.
-- Attached to the mart it guards (it reads several models): Dagster shows it as that asset's check.
{{ config(meta={'dagster': {'ref': {'name': 'fct_consumption_hourly'}}}) }}
with staged as (
    select
        r.meter_id,
        {{ dbt.date_trunc('hour', 'r.reading_start_utc') }} as hour_start_utc,
        sum(r.import_kwh) as kwh_import,
        sum(r.export_kwh) as kwh_export
    from {{ ref('stg_ops__vee_readings') }} as r
    left join {{ ref('stg_ops__meters') }} as m on r.meter_id = m.meter_id
    where r.status in ('actual', 'estimated', 'edited')
      and {{ metrify.in_partition_window(local_date(dbt.date_trunc('hour', 'r.reading_start_utc'), "coalesce(m.timezone, 'UTC')")) }}
    group by r.meter_id, {{ dbt.date_trunc('hour', 'r.reading_start_utc') }}
)

select s.meter_id, s.hour_start_utc, s.kwh_import, h.kwh_import as fact_kwh_import
from staged as s
left join {{ ref('fct_consumption_hourly') }} as h
    on s.meter_id = h.meter_id and s.hour_start_utc = h.hour_start_utc
where h.meter_id is null
   or abs(s.kwh_import - h.kwh_import) > 0.000001
   or abs(s.kwh_export - h.kwh_export) > 0.000001
