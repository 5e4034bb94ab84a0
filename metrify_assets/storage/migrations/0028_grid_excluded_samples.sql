-- Migration 0028: grid samples left out as sensor faults (docs/grid.md#samples-awaiting-review).
-- A sample whose frequency the record rules flagged and no reviewer approved, and whose neighbours do
-- not deviate with it, is left out of the states and the frequency figures: each hour counts those it
-- left out, and an hour of nothing else has no deviation figures (null) rather than invented ones.
ALTER TABLE ops.grid_stability ADD COLUMN IF NOT EXISTS excluded_samples integer NOT NULL DEFAULT 0;
ALTER TABLE ops.grid_stability
    ALTER COLUMN mean_deviation_hz DROP NOT NULL,
    ALTER COLUMN std_deviation_hz DROP NOT NULL,
    ALTER COLUMN min_deviation_hz DROP NOT NULL,
    ALTER COLUMN max_deviation_hz DROP NOT NULL,
    ALTER COLUMN max_abs_deviation_hz DROP NOT NULL,
    ALTER COLUMN share_outside_standard DROP NOT NULL;
