"""Days of hot rows for the lifecycle tests, and lakes to move them through: a local directory, and S3
over HTTP (moto's server) on a bucket created with object lock, as a real archive bucket is."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from metrify_assets.resources.lake import Lake

FIRST_DAY = date(2026, 1, 1)
DAYS = 3
METERS = ("m-001", "m-002")


def seed_hot_days(conn: psycopg.Connection, first: date = FIRST_DAY, days: int = DAYS) -> None:
    """Hourly readings of two meters (not in the registry: UTC days), 10-minute grid samples of one node
    and hourly weather of one station, for `days` days, with nulls and flags where the contract allows."""
    ingested = datetime(2026, 1, 10, 12, 0, 0, 123456, tzinfo=UTC)
    for d in range(days):
        start = datetime.combine(first + timedelta(days=d), datetime.min.time(), tzinfo=UTC)
        for i, meter in enumerate(METERS):
            conn.cursor().executemany(
                "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, direction, "
                "register_kwh, voltage_v, power_factor, status_flags, source, record_version, batch_id, ingested_at, "
                "quality_flags) VALUES (%s, %s, 60, %s, 'import', %s, %s, NULL, %s, 'test', 1, %s, %s, %s)",
                [
                    (
                        meter,
                        start + timedelta(hours=h),
                        0.1 + 0.013 * h + i / 7,
                        1000.0 + h if h % 5 else None,
                        230.1 + h / 10,
                        "power_fail" if h == 3 else None,
                        f"b{d}",
                        ingested,
                        "spike" if h == 7 and i == 0 else None,
                    )
                    for h in range(24)
                ],
            )
        conn.cursor().executemany(
            "INSERT INTO ops.grid_status (grid_node_id, measured_at, frequency_hz, voltage_v, load_mw, capacity_mw, "
            "record_version, batch_id, ingested_at) VALUES ('n-1', %s, %s, 230.0, 12.5, NULL, 1, %s, %s)",
            [
                (start + timedelta(minutes=10 * k), 50.0 + (k % 7 - 3) / 1000, f"g{d}", ingested)
                for k in range(144)
            ],
        )
        conn.cursor().executemany(
            "INSERT INTO ops.weather_observations (station_id, observed_at, temperature_c, humidity_pct, pressure_hpa, "
            "wind_speed_ms, precipitation_mm, record_version, batch_id, ingested_at) "
            "VALUES ('s-1', %s, %s, 80.0, 1012.0, 3.5, 0.0, 1, %s, %s)",
            [(start + timedelta(hours=h), -2.0 + h / 3, f"w{d}", ingested) for h in range(24)],
        )
    conn.commit()


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lake]:
    if request.param == "local":
        yield Lake(str(tmp_path / "lake"))
        return
    request.getfixturevalue("s3_endpoint")
    import boto3

    bucket = f"lifecycle-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    yield Lake(f"s3://{bucket}/lake")
