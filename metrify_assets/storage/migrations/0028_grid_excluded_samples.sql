-- Migration 0028: grid samples whose frequency awaits review (docs/grid.md#samples-awaiting-review).
-- A sample the record rules flagged `frequency_out_of_range` and no reviewer approved no longer drives
-- the system states or the frequency figures: each hour and event counts those it left out, and an
-- hour of nothing else has no deviation figures (null) rather than invented ones.
ALTER TABLE ops.grid_stability ADD COLUMN IF NOT EXISTS excluded_samples integer NOT NULL DEFAULT 0;
ALTER TABLE ops.grid_stability
    ALTER COLUMN mean_deviation_hz DROP NOT NULL,
    ALTER COLUMN std_deviation_hz DROP NOT NULL,
    ALTER COLUMN min_deviation_hz DROP NOT NULL,
    ALTER COLUMN max_deviation_hz DROP NOT NULL,
    ALTER COLUMN max_abs_deviation_hz DROP NOT NULL,
    ALTER COLUMN share_outside_standard DROP NOT NULL;
ALTER TABLE ops.grid_state_events ADD COLUMN IF NOT EXISTS excluded_samples integer NOT NULL DEFAULT 0;
