"""A message holds at most MAX_MESSAGE_RECORDS records: one over it is dead-lettered whole, once, as
one record with its reason, and its records are never decoded (a 900 KB message of 450,000 `7`s was
450,000 quarantined records, 504 MB of ops.quarantine)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import WEATHER_OBSERVATIONS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.ingestion.decode import decode
from metrify_assets.ingestion.limits import MAX_MESSAGE_RECORDS
from metrify_assets.resources.lake import Lake

NOW = pd.Timestamp("2026-04-01T00:00:00Z")
TOO_MANY = f"malformed:too_many_records ({MAX_MESSAGE_RECORDS + 1}; at most {MAX_MESSAGE_RECORDS})"


def observation(minute: int, station: str = "W1") -> dict[str, object]:
    return {"station_id": station, "observed_at": f"2026-03-31T{minute // 60:02d}:{minute % 60:02d}:00Z",
            "temperature_c": 9.5, "humidity_pct": 80, "pressure_hpa": 1012, "wind_speed_ms": 3.2,
            "precipitation_mm": 0}  # fmt: skip


def junk(records: int) -> str:
    return '{"records":[' + ",".join(["7"] * records) + "]}"


def test_a_message_over_the_limit_is_one_malformed_record_with_its_text() -> None:
    big = junk(MAX_MESSAGE_RECORDS + 1)
    messages = [json.dumps(observation(0)), big, json.dumps({"records": [observation(1), observation(2)]})]
    batch = decode(WEATHER_OBSERVATIONS, messages, [1, 2, 3])
    assert batch.records_in == 4  # the big message counts as one record in
    assert [(m.record_index, m.reason) for m in batch.malformed] == [(1, TOO_MANY)]
    assert batch.malformed[0].payload == big  # verbatim, for the quarantine and the DLQ
    assert batch.records["record_index"].tolist() == [0, 2, 3]
    assert batch.records["record_version"].tolist() == [1, 3, 3]
    assert batch.message_index == [0, 1, 2, 2]


def test_a_message_at_the_limit_is_decoded_record_by_record() -> None:
    batch = decode(WEATHER_OBSERVATIONS, [junk(MAX_MESSAGE_RECORDS)], [1])
    assert batch.records_in == MAX_MESSAGE_RECORDS
    assert {m.reason for m in batch.malformed} == {"malformed:not_an_object"}


@pytest.mark.postgres
def test_a_hand_landed_line_over_the_limit_is_one_quarantine_row(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    """The landing path reads the same decoder: in = accepted + quarantined, one row for the message."""
    lines = [json.dumps(observation(0)), junk(450_000), json.dumps({"records": [observation(1)]})]
    spec = BatchSpec(WEATHER_OBSERVATIONS, "landing-by-hand", "landing", "by-hand", date(2026, 3, 31))
    result = process_batch(spec, lines, [5, 5, 5], Lake(str(tmp_path / "lake")), pg, NOW)
    pg.commit()
    ledger = result.ledger
    assert (ledger.records_in, ledger.accepted, ledger.quarantined) == (3, 2, 1)
    rows = pg.execute("SELECT record_index, reasons, length(payload) FROM ops.quarantine").fetchall()
    assert rows == [(1, "malformed:too_many_records (450000; at most 10000)", len(junk(450_000)))]
