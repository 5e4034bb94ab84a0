select
    batch_id,
    record_index,
    source,
    payload,
    reasons,
    {{ to_utc('quarantined_at') }} as quarantined_at_utc
from {{ source('ops', 'quarantine') }}
