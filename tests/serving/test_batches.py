"""What `GET /v1/batches/{id}` reports once the pipeline has processed a request's records."""

from __future__ import annotations

from pathlib import Path

import psycopg

import metrify_assets.storage.migrations as migrations_package
from metrify_assets.resources.lake import Lake
from metrify_assets.serving import batches
from metrify_assets.storage.audit import Caller

MIGRATION_0026 = Path(migrations_package.__file__).parent / "0026_api_batch_token.sql"


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


def test_the_migration_names_the_token_of_requests_the_audit_log_knows(pg: psycopg.Connection) -> None:
    """Migration 0026 fills `token_id` of a request recorded before it from the request's `ingest.post`
    audit entry (written in the same transaction); a request whose entry has no token id stays NULL."""
    for batch_id, token_id in (("api-before-0026-a", "jti-0026-a"), ("api-before-0026-b", None)):
        pg.execute(
            "INSERT INTO ops.api_batches (batch_id, source, destination, landing_batch_id, records, subject) "
            "VALUES (%s, 'meter_readings', 'landing', %s, 1, 'gw-0026')",
            (batch_id, f"landing-{batch_id}"),
        )
        Caller.api("gw-0026", "10.0.0.1", token_id).record(pg, "ingest.post", f"api_batch:{batch_id}")
    pg.execute("UPDATE ops.api_batches SET token_id = NULL WHERE subject = 'gw-0026'")  # as before 0026
    pg.execute(MIGRATION_0026.read_text())
    rows = pg.execute(
        "SELECT batch_id, token_id FROM ops.api_batches WHERE subject = 'gw-0026' ORDER BY batch_id"
    ).fetchall()
    assert rows == [("api-before-0026-a", "jti-0026-a"), ("api-before-0026-b", None)]
    pg.rollback()
