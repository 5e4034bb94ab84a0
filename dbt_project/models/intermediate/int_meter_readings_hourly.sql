-- Billing-grade interval energy (VEE) rolled up to the UTC hour per meter, split into import and
-- export, and the part of its net energy that is estimated (`energy_estimated`, as the daily fact
-- splits it). The time-of-use period comes from the enrichment asset (null until it has enriched that hour).
with readings as (
    select * from {{ ref('int_meter_readings_localized') }}
),

enriched as (
    select meter_id, reading_start_utc, tou_period from {{ ref('stg_ops__enriched_meter_readings') }}
)

select
    r.meter_id,
    r.hour_start_utc,
    {{ local_date('r.hour_start_utc', 'r.timezone') }} as local_date,
    cast(extract(hour from {{ utc_to_local('r.hour_start_utc', 'r.timezone') }}) as integer) as local_hour,
    {{ exact_sum('r.import_kwh') }} as kwh_import,
    {{ exact_sum('r.export_kwh') }} as kwh_export,
    count(*) as interval_count,
    sum(case when r.energy_estimated then 1 else 0 end) as estimated_intervals,
    {{ exact_sum("case when r.energy_estimated then r.import_kwh - r.export_kwh else 0.0 end") }} as kwh_estimated,
    sum(r.interval_minutes) as covered_minutes,
    max(e.tou_period) as tou_period,
    max(r.processed_at_utc) as last_processed_at_utc
from readings as r
left join enriched as e
    on r.meter_id = e.meter_id and r.reading_start_utc = e.reading_start_utc
group by r.meter_id, r.hour_start_utc, r.timezone
