-- Daily billing-grade energy rolled up per region and customer segment, from the per-meter daily fact
-- (so it keeps archived days too), with the estimated share and how many meter-days passed VEE's
-- billing gate. Rebuilt whole on every run: one row per region, segment and day.
{{ config(indexes=[{'columns': ['local_date', 'region', 'segment']}]) }}
select
    coalesce(region, 'unknown') as region,
    coalesce(segment, 'unknown') as segment,
    local_date,
    count(*) as meter_count,
    -- bigint on PostgreSQL and Snowflake, a double on fakesnow (it casts sum's argument to double)
    cast(sum(case when billing_ready then 1 else 0 end) as {{ dbt.type_bigint() }}) as billing_ready_meters,
    {{ exact_sum('kwh_import') }} as kwh_import,
    {{ exact_sum('kwh_export') }} as kwh_export,
    {{ exact_sum('net_kwh') }} as net_kwh,
    {{ exact_sum('kwh_actual') }} as kwh_actual,
    {{ exact_sum('kwh_estimated') }} as kwh_estimated,
    avg(completeness) as avg_completeness
from {{ ref('fct_consumption_daily') }}
group by coalesce(region, 'unknown'), coalesce(segment, 'unknown'), local_date
