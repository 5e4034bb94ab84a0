-- Daily energy rolled up per region and customer segment, from the per-meter daily fact (so it
-- keeps archived days too). Rebuilt whole on every run: one row per region, segment and day.
select
    coalesce(region, 'unknown') as region,
    coalesce(segment, 'unknown') as segment,
    local_date,
    count(*) as meter_count,
    sum(kwh_import) as kwh_import,
    sum(kwh_export) as kwh_export,
    sum(net_kwh) as net_kwh,
    avg(completeness) as avg_completeness
from {{ ref('fct_consumption_daily') }}
group by coalesce(region, 'unknown'), coalesce(segment, 'unknown'), local_date
