"""The review queue's listing order is indexed (migration 0017): with `status=all`, `approved` or
`rejected` a page was a scan and sort of the whole queue history, on the session's PostgreSQL."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from metrify_assets.quality import review

pytestmark = [pytest.mark.postgres]
# The listing of GET /v1/review/items and `metrify review list`: their filter, order and a page.
LISTING = (
    f"SELECT batch_id, record_index FROM ops.review_queue WHERE {review.ITEM_FILTER} "
    "ORDER BY flagged_at, batch_id, record_index LIMIT 1001"
)


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's nodes, outermost first."""
    nodes, stack = [], [plan]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes


def test_a_page_of_every_status_reads_the_listing_index_and_stops(pg: psycopg.Connection) -> None:
    pg.execute(
        "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status, flagged_at) "
        "SELECT 'b' || (i / 1000), i % 1000, 'meter_readings', 'M|' || i, 'energy_spike', "
        "CASE WHEN i % 100 = 0 THEN 'pending' WHEN i % 2 = 0 THEN 'approved' ELSE 'rejected' END, "
        "timestamptz '2026-01-01' + i * interval '1 minute' FROM generate_series(1, 50000) AS i"
    )
    pg.execute("ANALYZE ops.review_queue")
    for status in (None, "approved"):
        row = pg.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + LISTING, review.filter_params(status, None, None)
        ).fetchone()
        assert row is not None
        nodes = plan_nodes(row[0][0]["Plan"])
        kinds = [n["Node Type"] for n in nodes]
        assert "Sort" not in kinds and "Seq Scan" not in kinds, (status, kinds)
        scan = next(n for n in nodes if n.get("Relation Name") == "review_queue")
        assert scan["Index Name"] == "review_queue_listing"
        assert scan["Actual Rows"] <= 2100  # the page (and the rows filtered out on its way), not 50,000
