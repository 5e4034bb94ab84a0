-- No energy is lost or invented on the way from staged readings to the hourly and daily facts:
-- returns a row (fails) when the grand totals differ.
with staged as (
    select sum(import_kwh) as kwh_import, sum(export_kwh) as kwh_export
    from {{ ref('stg_ops__meter_readings') }}
),

hourly as (
    select sum(kwh_import) as kwh_import, sum(kwh_export) as kwh_export
    from {{ ref('fct_consumption_hourly') }}
),

daily as (
    select sum(kwh_import) as kwh_import, sum(kwh_export) as kwh_export
    from {{ ref('fct_consumption_daily') }}
)

select s.kwh_import, s.kwh_export, h.kwh_import as hourly_import, d.kwh_import as daily_import
from staged as s
cross join hourly as h
cross join daily as d
where abs(coalesce(s.kwh_import, 0) - coalesce(h.kwh_import, 0)) > 0.000001
   or abs(coalesce(s.kwh_export, 0) - coalesce(h.kwh_export, 0)) > 0.000001
   or abs(coalesce(s.kwh_import, 0) - coalesce(d.kwh_import, 0)) > 0.000001
   or abs(coalesce(s.kwh_export, 0) - coalesce(d.kwh_export, 0)) > 0.000001
