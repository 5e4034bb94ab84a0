"""The storage cost report: the footprint measured in a real PostgreSQL and lake, priced tier by tier,
against every row kept hot."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from metrify_assets.cli.lifecycle import register
from metrify_assets.lifecycle.cost import (
    GIB,
    HotTable,
    PriceTable,
    StorageFootprint,
    Stored,
    cost_report,
    measure,
    steady_state_days,
)
from metrify_assets.lifecycle.policy import TierAges
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake

KIB = 1024
# Round prices, so the expected costs below read as arithmetic.
PRICES = PriceTable(hot_postgres=1.0, standard=0.1, standard_ia=0.05, glacier=0.01, deep_archive=0.001)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
# (dataset, day, tier, storage_class, bytes, row_count, hot deleted)
DAYS = [
    ("meter_readings", date(2026, 5, 30), "warm", "STANDARD", 300_000, 1_000, False),
    ("meter_readings", date(2026, 4, 1), "warm", "STANDARD", 200_000, 800, True),
    ("meter_readings", date(2026, 2, 1), "cold", "STANDARD_IA", 500_000, 2_000, True),
    ("meter_readings", date(2025, 1, 1), "archive", "GLACIER", 1_000_000, 4_000, True),
    ("grid_status", date(2026, 2, 1), "cold", "STANDARD_IA", 50_000, 144, True),  # under 128 KiB
]


def seed(conn: psycopg.Connection) -> None:
    start = datetime(2026, 5, 30, tzinfo=UTC)
    cur = conn.cursor()
    cur.executemany(
        "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, record_version, batch_id) "
        "VALUES (%s, %s, 15, %s, 1, 'b1')",
        [(f"m-{m}", start + timedelta(minutes=15 * i), 0.25 + i / 100) for m in range(2) for i in range(20)],
    )
    cur.executemany(
        "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, row_count, "
        "bytes, checksum, sha256, verified_at, moved_at, hot_deleted_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'c', 's', %s, %s, %s)",
        [
            (
                d,
                day,
                tier,
                cls,
                f"curated/{d}/dt={day}/{d}.parquet",
                f"curated/{d}/dt={day}/manifest.json",
                rows,
                size,
                NOW,
                NOW,
                NOW if gone else None,
            )
            for d, day, tier, cls, size, rows, gone in DAYS
        ],
    )
    conn.commit()


def seed_lake(lake: Lake) -> None:
    lake.put("raw/meter_readings/dt=2026-05-31/b1.jsonl.gz", b"x" * 1_000)
    lake.put("raw/meter_readings/dt=2026-04-01/b0.jsonl.gz", b"x" * 200_000, storage_class="STANDARD_IA")
    lake.put("curated/meter_readings/dt=2026-05-30/meter_readings.parquet", b"not counted from the listing")


def relation_size(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.postgres
def test_measure_and_price_the_footprint(pg: psycopg.Connection, tmp_path: Path) -> None:
    seed(pg)
    lake = Lake(str(tmp_path / "lake"))
    seed_lake(lake)

    footprint = measure(pg, lake)
    hot = {t.dataset: t for t in footprint.hot}
    meters_bytes = relation_size(pg, "ops.meter_readings")
    assert hot["meter_readings"] == HotTable("meter_readings", "ops.meter_readings", meters_bytes, 40, False)
    assert hot["grid_status"].rows == 0 and hot["weather_observations"].rows == 0
    assert hot["grid_status"].bytes == relation_size(pg, "ops.grid_status") > 0  # the empty indexes' pages
    assert footprint.lake == (
        Stored("STANDARD", 500_000, 2, 0, 0, 1_800),
        Stored("STANDARD_IA", 550_000, 2, 1, 50_000, 2_144),
        Stored("GLACIER", 1_000_000, 1, 0, 0, 4_000),
    )
    assert footprint.lake_only_rows == {"meter_readings": 6_800, "grid_status": 144}
    assert footprint.raw == (Stored("STANDARD", 1_000, 1, 1, 1_000), Stored("STANDARD_IA", 200_000, 1, 0, 0))

    report = cost_report(footprint, PRICES)
    usd = {line.storage_class + "/" + line.tier: line.monthly_usd for line in report.lines}
    hot_bytes = footprint.hot_bytes
    assert usd["PostgreSQL/hot"] == pytest.approx(hot_bytes / GIB * 1.0)
    assert usd["STANDARD/warm"] == pytest.approx(500_000 / GIB * 0.1)
    # The 50 kB grid day is billed as 128 KiB in STANDARD_IA.
    assert usd["STANDARD_IA/cold"] == pytest.approx((500_000 + 128 * KIB) / GIB * 0.05)
    # 32 KiB more at GLACIER's price and 8 KiB at STANDARD's for the archived object.
    assert usd["GLACIER/archive"] == pytest.approx((1_000_000 + 32 * KIB) / GIB * 0.01 + 8 * KIB / GIB * 0.1)
    assert usd["STANDARD/raw"] == pytest.approx(1_000 / GIB * 0.1)
    assert usd["STANDARD_IA/raw"] == pytest.approx(200_000 / GIB * 0.05)
    assert report.monthly_usd == pytest.approx(sum(usd.values()))

    # All hot: each dataset's lake-only rows at its hot bytes per row (grid has no hot rows: all
    # datasets' bytes per row), the raw batches at STANDARD.
    per_row = meters_bytes / 40
    overall = hot_bytes / 40
    all_hot_bytes = hot_bytes + per_row * 6_800 + overall * 144
    assert report.all_hot_bytes == round(all_hot_bytes)
    all_hot_usd = round(all_hot_bytes) / GIB * 1.0 + 201_000 / GIB * 0.1
    assert report.all_hot_monthly_usd == pytest.approx(all_hot_usd)
    assert report.ratio == pytest.approx(report.monthly_usd / all_hot_usd)
    assert report.ratio is not None and report.ratio < 0.05  # a few kB a row hot, ~120 B a row in the lake
    assert any("1 STANDARD_IA object(s) under 128 KiB" in note for note in report.notes)

    text = report.markdown()
    assert "| hot | PostgreSQL |" in text and "| archive | GLACIER | 976.6 KiB | 1 | 4,000 |" in text
    assert "% saved" in text


def test_the_all_hot_ratio_in_round_numbers() -> None:
    """1 GiB hot holding 1M rows, 9M more rows in the lake: all hot they would take 10 GiB."""
    footprint = StorageFootprint(
        hot=(HotTable("meter_readings", "ops.meter_readings", GIB, 1_000_000, False),),
        lake=(
            Stored("STANDARD", GIB // 4, 90, rows=3_000_000),
            Stored("GLACIER", GIB // 2, 300, rows=6_000_000),
        ),
        raw=(Stored("STANDARD", GIB, 1_000),),
        lake_only_rows={"meter_readings": 9_000_000},
    )
    prices = PriceTable(archive_object_overhead=False)
    report = cost_report(footprint, prices)
    assert report.all_hot_bytes == 10 * GIB
    assert report.all_hot_monthly_usd == pytest.approx(10 * 0.23 + 1 * 0.023)
    expected = 0.23 + 0.25 * 0.023 + 0.5 * 0.0036 + 0.023
    assert report.monthly_usd == pytest.approx(expected)
    assert report.ratio == pytest.approx(expected / 2.323)
    assert report.savings_pct == round(100 * (1 - expected / 2.323), 1)
    assert json.loads(json.dumps(report.as_dict()))["ratio"] == pytest.approx(report.ratio)


def test_no_hot_rows_means_no_all_hot_estimate() -> None:
    footprint = StorageFootprint(
        hot=(HotTable("meter_readings", "ops.meter_readings", 16 * KIB, 0, False),),
        lake=(Stored("GLACIER", GIB, 10, rows=1_000),),
        raw=(),
        lake_only_rows={"meter_readings": 1_000},
    )
    report = cost_report(footprint)
    assert report.ratio is None and report.all_hot_monthly_usd is None
    assert "not available" in report.summary()


def test_price_table_from_json(tmp_path: Path) -> None:
    good = tmp_path / "prices.json"
    good.write_text(
        json.dumps({"hot_postgres": 0.115, "standard": 0.0245, "as_of": "2026-12", "ia_min_object": False})
    )
    prices = PriceTable.from_json(good)
    assert prices == PriceTable(hot_postgres=0.115, standard=0.0245, as_of="2026-12", ia_min_object=False)
    assert prices.glacier == 0.0036  # the others keep their defaults

    bad_key = tmp_path / "bad-key.json"
    bad_key.write_text(json.dumps({"standard": 0.02, "glacier_ir": 0.004}))
    with pytest.raises(
        ValueError, match=r"bad-key.json: unknown price key\(s\) glacier_ir; known: hot_postgres, "
    ):
        PriceTable.from_json(bad_key)
    bad_value = tmp_path / "bad-value.json"
    bad_value.write_text(json.dumps({"standard": "cheap"}))
    with pytest.raises(ValueError, match="price standard must be a number >= 0"):
        PriceTable.from_json(bad_value)
    not_object = tmp_path / "list.json"
    not_object.write_text("[0.023]")
    with pytest.raises(ValueError, match="expected a JSON object of prices"):
        PriceTable.from_json(not_object)


def test_steady_state_days() -> None:
    assert steady_state_days(TierAges(), 3 * 365) == {"hot": 30, "warm": 90, "cold": 275, "archive": 730}
    assert steady_state_days(TierAges(), 60) == {"hot": 30, "warm": 60, "cold": 0, "archive": 0}
    assert steady_state_days(TierAges(expire_days=400), 3 * 365) == {
        "hot": 30,
        "warm": 90,
        "cold": 275,
        "archive": 35,
    }


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.mark.postgres
def test_cli_cost(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(pg)
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.delenv("METRIFY_LAKE_URL", raising=False)
    seed_lake(Lake(str(tmp_path / "lake")))
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES.as_dict()))

    as_json = CliRunner().invoke(_cli(), ["lifecycle", "cost", "--prices", str(prices), "--json"])
    assert as_json.exit_code == 0, as_json.output
    expected = cost_report(measure(pg, Lake(str(tmp_path / "lake"))), PRICES)
    assert json.loads(as_json.stdout) == expected.as_dict()

    shown = CliRunner().invoke(_cli(), ["lifecycle", "cost"])
    assert shown.exit_code == 0, shown.output
    assert "PostgreSQL" in shown.output and "GLACIER" in shown.output and "% saved" in shown.output

    prices.write_text(json.dumps({"standard": 0.02, "glacier_ir": 0.004}))
    refused = CliRunner().invoke(_cli(), ["lifecycle", "cost", "--prices", str(prices)])
    assert refused.exit_code == 1 and "unknown price key(s) glacier_ir" in refused.output
    assert "Traceback" not in refused.output


@pytest.mark.s3
def test_raw_batches_are_listed_with_sizes_and_classes_alike_on_s3(s3_endpoint: str, tmp_path: Path) -> None:
    local, s3 = Lake(str(tmp_path / "lake")), Lake(f"s3://metrify-lake/cost-{uuid.uuid4().hex[:8]}")
    for lake in (local, s3):
        seed_lake(lake)
    expected = [
        ("raw/meter_readings/dt=2026-04-01/b0.jsonl.gz", 200_000, "STANDARD_IA"),
        ("raw/meter_readings/dt=2026-05-31/b1.jsonl.gz", 1_000, "STANDARD"),
    ]
    assert local.list_sizes("raw/") == s3.list_sizes("raw/") == expected
