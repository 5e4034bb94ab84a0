-- ENTSO-E system-state events per grid node (docs/grid.md): when a node entered alert or emergency,
-- when it left (null while the state still held at its newest sample), the rule that fired, the peak
-- deviation, and the duration in minutes of a closed event.
select
    grid_node_id,
    started_at_utc,
    ended_at_utc,
    state,
    rule,
    area,
    start_utc_date,
    peak_deviation_hz,
    ended_at_utc is null as is_open,
    {{ dbt.datediff('started_at_utc', 'ended_at_utc', 'second') }} / 60.0 as duration_minutes
from {{ ref('stg_ops__grid_state_events') }}
