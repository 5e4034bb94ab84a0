"""What `GET /v1/batches/{id}` reports once the pipeline has processed a request's records."""

from __future__ import annotations

from pathlib import Path

import psycopg

from metrify_assets.resources.lake import Lake
from metrify_assets.serving import batches


def test_a_processed_request_counts_its_quarantine_by_reason_code(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    """A parser's detail and a reviewer's note are not codes: counted as such, every distinct detail
    was a reason of its own (and the API's docs promise codes, as the marts and `dlq list` count)."""
    landing = "landing-meter_readings-0001"
    pg.execute(
        "INSERT INTO ops.ingest_ledger (batch_id, source, origin, origin_ref, raw_key, records_in, accepted, "
        "flagged, quarantined) VALUES (%s, 'meter_readings', 'landing', 'x.jsonl', 'raw/x', 4, 1, 0, 3)",
        (landing,),
    )
    with pg.cursor() as cur:
        cur.executemany(
            "INSERT INTO ops.quarantine (batch_id, record_index, source, payload, reasons) "
            "VALUES (%s, %s, 'meter_readings', '{}', %s)",
            [
                (landing, 0, "malformed:invalid_json (unexpected character: line 1 column 2)"),
                (landing, 1, "malformed:invalid_json (unexpected end of data: line 1 column 9)"),
                (landing, 2, "review_rejected:meter swapped on site,range:energy_kwh"),
            ],
        )
    pg.execute(
        "INSERT INTO ops.api_batches (batch_id, source, destination, landing_batch_id, records, subject) "
        "VALUES ('api-1', 'meter_readings', 'landing', %s, 4, 'tester')",
        (landing,),
    )
    pg.commit()
    status = batches.status(pg, Lake(str(tmp_path)), "api-1")
    assert status is not None and status.status == "processed"
    assert (status.accepted, status.quarantined) == (1, 3)
    assert status.reasons == {"malformed:invalid_json": 2, "review_rejected": 1, "range:energy_kwh": 1}
    stored = pg.execute("SELECT reasons FROM ops.api_batches WHERE batch_id = 'api-1'").fetchone()
    assert stored is not None and stored[0] == status.reasons
