select
    meter_id,
    {{ to_utc('reading_start') }} as reading_start_utc,
    score as anomaly_score,
    is_anomaly,
    model_version,
    {{ to_utc('scored_at') }} as scored_at_utc
from {{ source('ops', 'anomaly_scores') }}
