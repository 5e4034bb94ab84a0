"""A dead letter whose key a later batch stores an accepted record for is resolved as superseded, on a
real PostgreSQL: a trial's corrected file left the first file's rejects waiting, and each resend
added its bad rows to the replayable count again (5 -> 8)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from metrify_assets.contracts import CONTRACTS, METER_READINGS, SourceContract
from metrify_assets.ingestion import dead_letters
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.quality.quarantine import record_key, record_key_sql
from metrify_assets.resources.lake import Lake
from tests.ingestion.test_batch import NOW

pytestmark = pytest.mark.postgres
METER = "MTR-SUPERSEDED-1"


def reading(start: str, kwh: float | None) -> str:
    record = {"meter_id": METER, "reading_start": start, "interval_minutes": 15}
    return json.dumps(record if kwh is None else record | {"energy_kwh": kwh})


def ingest(conn: psycopg.Connection, lake: Lake, batch_id: str, messages: list[str], version: int) -> None:
    spec = BatchSpec(METER_READINGS, batch_id, "landing", f"{batch_id}.jsonl", date(2026, 3, 29))
    process_batch(spec, messages, [version] * len(messages), lake, conn, NOW)
    conn.commit()


V1 = [
    reading("2026-03-29T00:00:00Z", 0.5),
    reading("2026-03-29T01:15:00+01:00", None),  # no energy: malformed, keyed 00:15Z
    reading("2026-03-29T00:30:00Z", -0.3),  # negative: a rule rejects it
    "{broken",  # no key: nothing can supersede it
]
V2 = [
    reading("2026-03-29T00:00:00Z", 0.5),
    reading("2026-03-29T00:15:00Z", 0.4),
    reading("2026-03-29T00:30:00Z", 0.3),
]


def waiting(conn: psycopg.Connection) -> tuple[int, int]:
    return dead_letters.totals(conn, dead_letters.Selection(source="meter_readings"))


def test_a_correction_supersedes_the_rejects_it_stores_and_a_resend_adds_none(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ingest(pg, lake, "sup-v1", V1, 10)
    ingest(pg, lake, "sup-v1-again", V1[1:], 11)  # the bad rows sent again
    assert waiting(pg) == (6, 6)
    ingest(pg, lake, "sup-v2", V2, 12)
    # The four rows of the two keys v2 stored are settled, by v2; the broken line of each waits.
    assert waiting(pg) == (2, 2)
    resolved = pg.execute(
        "SELECT batch_id, record_index, resolved_by FROM ops.quarantine WHERE resolved_at IS NOT NULL "
        "ORDER BY 1, 2"
    ).fetchall()
    assert resolved == [
        ("sup-v1", 1, "superseded by sup-v2"),
        ("sup-v1", 2, "superseded by sup-v2"),
        ("sup-v1-again", 0, "superseded by sup-v2"),
        ("sup-v1-again", 1, "superseded by sup-v2"),
    ]
    # Resolution is not deletion: each batch still reconciles.
    ledger = pg.execute(
        "SELECT batch_id, records_in, accepted, quarantined FROM ops.ingest_ledger ORDER BY 1"
    ).fetchall()
    assert ledger == [("sup-v1", 4, 1, 3), ("sup-v1-again", 3, 0, 3), ("sup-v2", 3, 3, 0)]
    # The same bad rows sent after the correction wait: only a later accepted record settles them.
    ingest(pg, lake, "sup-v1-late", V1[1:3], 13)
    assert waiting(pg) == (4, 4)


def test_an_old_batch_run_again_does_not_settle_a_newer_reject(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ingest(pg, lake, "sup-new", [reading("2026-03-29T02:00:00Z", -1.0)], 30)
    ingest(pg, lake, "sup-old", [reading("2026-03-29T02:00:00Z", 1.0)], 5)
    assert waiting(pg) == (1, 1)


def test_the_key_of_a_payload_is_the_stored_records_key() -> None:
    assert record_key("meter_readings", reading("2026-03-29T01:15:00+01:00", None)) == (
        f"{METER}|2026-03-29T00:15:00Z"
    )
    for payload in ("{broken", "[1]", reading("2026-03-29 00:15:00", 1.0), json.dumps({"meter_id": METER})):
        assert record_key("meter_readings", payload) is None
    # A text no stored record could have: PostgreSQL holds no NUL (the whole batch failed on one), nor
    # indexes a key of thousands of characters.
    for meter in ("M\u00001", "M" * 5000):
        payload = json.dumps({"meter_id": meter, "reading_start": "2026-03-29T00:15:00Z", "energy_kwh": 1.0})
        assert record_key("meter_readings", payload) is None


@pytest.mark.parametrize("contract", list(CONTRACTS.values()), ids=lambda c: c.source)
def test_the_key_in_sql_is_the_payloads_key(pg: psycopg.Connection, contract: SourceContract) -> None:
    """`supersede` keys the stored rows in SQL: the same text `record_key` gives their payloads, in
    whatever time zone the session runs."""
    ident, time = contract.key
    assert time == contract.time_field
    stamps = ["2026-03-29T01:15:07.250+01:00", "2026-10-25T01:30:00-12:00", "2031-01-01T00:00:00Z"]
    pg.execute("SET TIME ZONE 'Pacific/Kiritimati'")
    pg.execute(f"CREATE TEMP TABLE keyed ({ident} text, {time} timestamptz)")
    with pg.cursor() as cur:
        cur.executemany("INSERT INTO keyed VALUES (%s, %s)", [(f"ID-{i}", s) for i, s in enumerate(stamps)])
    in_sql = [
        row[0]
        for row in pg.execute(
            sql.SQL("SELECT {} FROM keyed AS k ORDER BY {}").format(
                record_key_sql(contract, "k"), sql.Identifier(ident)
            )
        ).fetchall()
    ]
    payloads = [json.dumps({ident: f"ID-{i}", time: s}) for i, s in enumerate(stamps)]
    assert in_sql == [record_key(contract.source, p) for p in payloads]
    assert in_sql[0] == "ID-0|2026-03-29T00:15:07Z"
