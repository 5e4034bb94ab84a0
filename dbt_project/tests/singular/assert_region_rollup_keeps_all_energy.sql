-- The region/segment rollup neither loses nor invents energy: per local day, its totals equal the
-- per-meter daily fact's.
-- Attached to the mart it guards (it reads several models): Dagster shows it as that asset's check.
{{ config(meta={'dagster': {'ref': {'name': 'fct_consumption_daily_by_region'}}}) }}
with rollup as (
    select local_date, sum(kwh_import) as kwh_import, sum(kwh_export) as kwh_export
    from {{ ref('fct_consumption_daily_by_region') }}
    group by local_date
),

meters as (
    select local_date, sum(kwh_import) as kwh_import, sum(kwh_export) as kwh_export
    from {{ ref('fct_consumption_daily') }}
    group by local_date
)

select coalesce(r.local_date, m.local_date) as local_date, r.kwh_import, m.kwh_import as meter_kwh_import
from rollup as r
full outer join meters as m on r.local_date = m.local_date
where r.local_date is null
   or m.local_date is null
   or abs(r.kwh_import - m.kwh_import) > 0.000001
   or abs(r.kwh_export - m.kwh_export) > 0.000001
