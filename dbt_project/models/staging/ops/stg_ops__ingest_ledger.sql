select
    batch_id,
    source,
    origin,
    origin_ref,
    raw_key,
    records_in,
    accepted,
    flagged,
    quarantined,
    quality_score,
    run_id,
    {{ to_utc('processed_at') }} as processed_at_utc
from {{ source('ops', 'ingest_ledger') }}
