-- Migration 0033: which grid samples grid_stability left out as sensor faults (0028 counts them per
-- hour in ops.grid_stability.excluded_samples). Written with the hours, delete + insert by UTC day
-- (grid/store.py `write`), so the dbt mart fct_grid_stability leaves out exactly these samples
-- instead of judging them a second time (docs/grid.md#samples-awaiting-review).
CREATE TABLE IF NOT EXISTS ops.grid_excluded_samples (
    day           date        NOT NULL,  -- UTC day of measured_at: the grid partition
    grid_node_id  text        NOT NULL,
    measured_at   timestamptz NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (day, grid_node_id, measured_at)
);
