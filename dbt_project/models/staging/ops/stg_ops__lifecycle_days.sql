-- One row per tiered dataset and day with a verified copy in the lake (docs/lifecycle.md): its tier,
-- and when its hot rows were deleted from `ops` and restored. The incremental marts built from the hot
-- samples read it to keep the days whose rows left PostgreSQL (macros/hot_tier.sql).
select
    dataset,
    day,
    tier,
    row_count,
    {{ to_utc('hot_deleted_at') }} as hot_deleted_at_utc,
    hot_rows_deleted,
    {{ to_utc('restored_at') }} as restored_at_utc,
    keep_hot_until,
    {{ to_utc('verified_at') }} as verified_at_utc
from {{ source('ops', 'lifecycle_days') }}
