-- Migration 0017: the review queue in the order every listing reads it.

-- `GET /v1/review/items` and `metrify review list` page the queue by (flagged_at, batch_id,
-- record_index). With `status=all` (or `approved`, `rejected`) the only index, the pending one, does
-- not apply, so each page was a scan and sort of the whole history (54 ms at 300k rows, growing with
-- it); along this index a page reads its rows and stops (under 1 ms).
CREATE INDEX IF NOT EXISTS review_queue_listing ON ops.review_queue (flagged_at, batch_id, record_index);
