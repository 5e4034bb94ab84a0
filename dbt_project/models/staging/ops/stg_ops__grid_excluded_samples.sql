-- The grid samples the grid_stability asset left out as sensor faults (metrify_assets/grid/analysis.py
-- `excluded`, docs/grid.md#samples-awaiting-review), by UTC day. fct_grid_stability leaves these out
-- of its frequency figures, so the mart and ops.grid_stability agree on one judgement.
select
    day as utc_date,
    grid_node_id,
    {{ to_utc('measured_at') }} as measured_at_utc
from {{ source('ops', 'grid_excluded_samples') }}
