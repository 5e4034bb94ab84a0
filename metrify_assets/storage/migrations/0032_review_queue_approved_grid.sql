-- Migration 0032: grid_stability asks, for each sample the record rules flagged
-- frequency_out_of_range, whether a reviewer approved it (grid/store.py `suspect_sql`). The queue's
-- primary key is (batch_id, record_index) and the question names the batch and the sample's key, so
-- the probe read every review item of the sample's batch: a day of a stuck sensor's flagged samples
-- in one batch cost the square of their number on every refresh of the day. Approvals of grid
-- samples are few: index only those, by batch.
CREATE INDEX IF NOT EXISTS review_queue_approved_grid
    ON ops.review_queue (batch_id) WHERE status = 'approved' AND source = 'grid_status';
