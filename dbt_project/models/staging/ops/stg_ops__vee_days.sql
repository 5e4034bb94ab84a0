-- One row per meter-day VEE processed: interval counts by status and the billing gate's verdict.
select
    meter_id,
    local_date,
    timezone,
    interval_minutes,
    expected_intervals,
    actual_intervals,
    estimated_intervals,
    edited_intervals,
    missing_intervals,
    failed_intervals,
    flagged_intervals,
    actual_kwh,
    estimated_kwh,
    outage,
    estimation_skipped,
    billing_ready,
    gate_failures,
    rule_version,
    {{ to_utc('processed_at') }} as processed_at_utc
from {{ source('ops', 'vee_days') }}
