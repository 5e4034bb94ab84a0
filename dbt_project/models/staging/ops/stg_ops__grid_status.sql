select
    grid_node_id,
    {{ to_utc('measured_at') }} as measured_at_utc,
    frequency_hz,
    voltage_v,
    load_mw,
    capacity_mw,
    record_version,
    batch_id,
    {{ to_utc('ingested_at') }} as ingested_at_utc,
    quality_flags
from {{ source('ops', 'grid_status') }}
