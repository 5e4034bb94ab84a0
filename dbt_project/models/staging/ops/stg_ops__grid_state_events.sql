-- ENTSO-E system-state events of grid nodes (alert / emergency), as the grid_stability asset found
-- them: an event lasts from the first sample in the state to the first sample out of it; `ended_at`
-- is null while the state still held at the node's newest sample.
select
    grid_node_id,
    {{ to_utc('started_at') }} as started_at_utc,
    {{ to_utc('ended_at') }} as ended_at_utc,
    state,
    rule,
    area,
    start_day as start_utc_date,
    peak_deviation_hz,
    {{ to_utc('processed_at') }} as processed_at_utc
from {{ source('ops', 'grid_state_events') }}
