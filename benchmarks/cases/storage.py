"""Case 5: bytes per reading in each lifecycle tier against the raw JSON of the same readings, duplicates
eliminated, and what keeping readings costs per tier and under the default policy against all hot.

- raw JSON: one JSON object per reading; raw batch: the messages gzipped, as stored under raw/.
- archive bytes (Parquet zstd): every accepted reading in one file (the figures kept from before).
- hot: the accepted readings written as an ingest run writes them (COPY + merge, 50k-row batches) into
  ops.meter_readings of a fresh embedded PostgreSQL, vacuumed, sized with pg_total_relation_size
  (heap, primary key and BRIN indexes, TOAST, free space and visibility maps).
- warm / cold / archive tiers: the same object in each (only its storage class changes): each day's
  rows read back from PostgreSQL as the lifecycle copies them (every column, `ingested_at` included)
  and written as one Parquet (zstd) object a day.

Costs use `PriceTable`'s defaults (USD per GB-month, us-east-1; hot: RDS gp3 Multi-AZ, see
metrify_assets/lifecycle/cost.py), storage only, per GB: at a fleet's size a day's object is megabytes,
so S3's per-object minimums (STANDARD_IA 128 KiB, GLACIER 40 KiB) do not matter. The steady state is
STEADY_YEARS of a 1M readings/day fleet (about 10,400 meters at 15 minutes) under the default policy:
days 0-30 hot and also in warm (the day's copy is written the next day), 0-90 warm, 90-365 cold,
the rest archive; raw batches STANDARD to 30 days, STANDARD_IA to 400, then deleted. All hot keeps
every day in PostgreSQL at the hot bytes per reading, raw batches at STANDARD for the same 400 days.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import CaseResult
from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.batch import raw_body, stored_rows
from metrify_assets.ingestion.decode import decode
from metrify_assets.ingestion.limits import MAX_BATCH_MESSAGES
from metrify_assets.lifecycle.cost import GIB, PriceTable, steady_state_days
from metrify_assets.lifecycle.policy import Policy
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.quality import rules
from metrify_assets.resources import PostgresResource
from metrify_assets.simulation import SimulationConfig, simulate
from metrify_assets.storage.embedded_server import stop_embedded
from metrify_assets.storage.parquet import to_parquet_bytes
from metrify_assets.storage.writes import upsert_rows

NOW = pd.Timestamp("2030-01-01T00:00:00Z")
STEADY_YEARS = 3
FLEET_READINGS_PER_DAY = 1_000_000
MILLION = 1_000_000


def hot_and_tier_bytes(accepted: pd.DataFrame) -> tuple[int, int, int, int]:
    """(hot bytes, hot rows, tier bytes, tier rows): the readings in a fresh PostgreSQL's
    ops.meter_readings, and one Parquet (zstd) object per day as the lifecycle copies them out."""
    rows = accepted.drop_duplicates(list(METER_READINGS.key), keep="last").reset_index(drop=True)
    home = Path(tempfile.mkdtemp(prefix="metrify-bench-storage-"))
    postgres = PostgresResource(data_dir=str(home / "pg"))
    try:
        with postgres.connect() as conn:
            for start in range(0, len(rows), MAX_BATCH_MESSAGES):
                end = min(start + MAX_BATCH_MESSAGES, len(rows))
                batch_id = f"{METER_READINGS.topic}-0-{start}-{end}"  # as an ingest run names its batch
                with conn.transaction():
                    upsert_rows(
                        conn,
                        METER_READINGS,
                        stored_rows(METER_READINGS, rows.iloc[start:end], batch_id, None),
                    )
        with postgres.connect(autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE ops.meter_readings")
            size = conn.execute(
                "SELECT pg_total_relation_size('ops.meter_readings'), count(*) FROM ops.meter_readings"
            ).fetchone()
            days = conn.execute(
                "SELECT DISTINCT (reading_start AT TIME ZONE 'UTC')::date FROM ops.meter_readings ORDER BY 1"
            ).fetchall()
            table = TABLES["meter_readings"]
            tier_bytes = tier_rows = 0
            for (day,) in days:  # meters without a registry entry: UTC days
                frame = table.read_days(conn, day, day)
                frame = frame.sort_values(list(table.key), kind="stable").reset_index(drop=True)
                tier_bytes += len(to_parquet_bytes(frame))
                tier_rows += len(frame)
    finally:
        stop_embedded(home / "pg")
        shutil.rmtree(home, ignore_errors=True)
    assert size is not None
    return int(size[0]), int(size[1]), tier_bytes, tier_rows


def storage(scale: float) -> CaseResult:
    config = SimulationConfig(meters=max(20, int(1000 * scale)), days=2, fault_rate=0.0, seed=5)
    messages = simulate(config).messages["meter_readings"]
    clean = decode(METER_READINGS, messages, [1] * len(messages))
    raw_bytes = sum(len(p.encode()) for p in clean.payloads)  # one JSON object per reading
    raw_gzip = len(raw_body(messages))

    # Inject 10 % exact duplicates (re-sent readings) and let the pipeline's rules eliminate them.
    rng = np.random.default_rng(5)
    dup_idx = rng.choice(len(clean.payloads), size=len(clean.payloads) // 10, replace=False)
    with_dups = messages + [clean.payloads[i] for i in dup_idx]
    batch = decode(METER_READINGS, with_dups, [1] * len(with_dups))
    outcome = rules.evaluate("meter_readings", batch.records, NOW)
    accepted = batch.records[(outcome.decision != "reject").to_numpy()]
    eliminated = int(outcome.masks["duplicate_exact"].sum())
    archive = to_parquet_bytes(accepted.sort_values(["meter_id", "reading_start"]))

    readings = len(clean.payloads)
    hot_bytes, hot_rows, tier_bytes, tier_rows = hot_and_tier_bytes(accepted)
    per_reading = {
        "raw JSON": raw_bytes / readings,
        "hot": hot_bytes / hot_rows,
        "warm/cold/archive": tier_bytes / tier_rows,
        "raw batch": raw_gzip / readings,
    }
    prices = PriceTable()
    ages = Policy().tier_ages("meter_readings")
    archive_class = ages.archive_class

    def usd_per_million(tier: str, price: float) -> float:
        return per_reading[tier] * MILLION / GIB * price

    monthly = {
        "hot (PostgreSQL)": usd_per_million("hot", prices.hot_postgres),
        "warm (STANDARD)": usd_per_million("warm/cold/archive", prices.standard),
        "cold (STANDARD_IA)": usd_per_million("warm/cold/archive", prices.standard_ia),
        f"archive ({archive_class})": usd_per_million("warm/cold/archive", prices.per_gb(archive_class)),
        "raw batch (gzip, STANDARD)": usd_per_million("raw batch", prices.standard),
    }
    # Steady state: every tier's days of a fleet's readings, per month.
    days = steady_state_days(ages, STEADY_YEARS * 365)
    raw_policy = Policy().raw
    raw_days = raw_policy.days or STEADY_YEARS * 365
    raw_standard_days = min(raw_policy.ia_days or raw_days, raw_days)
    fleet = FLEET_READINGS_PER_DAY / MILLION  # millions of readings a day
    tiered = fleet * (
        days["hot"] * monthly["hot (PostgreSQL)"]
        + days["warm"] * monthly["warm (STANDARD)"]
        + days["cold"] * monthly["cold (STANDARD_IA)"]
        + days["archive"] * monthly[f"archive ({archive_class})"]
        + raw_standard_days * monthly["raw batch (gzip, STANDARD)"]
        + (raw_days - raw_standard_days) * usd_per_million("raw batch", prices.standard_ia)
    )
    all_hot = fleet * (
        STEADY_YEARS * 365 * monthly["hot (PostgreSQL)"] + raw_days * monthly["raw batch (gzip, STANDARD)"]
    )
    steady = f"steady state ({STEADY_YEARS} y of 1M readings/day, default policy)"

    def compression(tier: str) -> float:
        return round(100 * (1 - per_reading[tier] / per_reading["raw JSON"]), 1)

    return CaseResult(
        name="storage",
        title="5. Storage",
        figures={
            "readings": readings,
            "raw JSON bytes": raw_bytes,
            "raw batch bytes (gzip, as stored in raw/)": raw_gzip,
            "archive bytes (Parquet zstd)": len(archive),
            "compression vs raw JSON %": round(100 * (1 - len(archive) / raw_bytes), 1),
            "bytes per reading (archive)": round(len(archive) / len(accepted), 2),
            "duplicates injected": len(dup_idx),
            "duplicates eliminated %": round(100 * eliminated / len(dup_idx), 2),
            "archived rows = unique readings": bool(len(accepted) == len(clean.records)),
            "bytes per reading: raw JSON": round(per_reading["raw JSON"], 1),
            "bytes per reading: hot (PostgreSQL table + indexes)": round(per_reading["hot"], 1),
            "bytes per reading: warm = cold = archive (Parquet zstd, one object a day)": round(
                per_reading["warm/cold/archive"], 2
            ),
            "bytes per reading: raw batch (gzip)": round(per_reading["raw batch"], 2),
            "compression vs raw JSON %: hot": compression("hot"),
            "compression vs raw JSON %: warm/cold/archive": compression("warm/cold/archive"),
            "compression vs raw JSON %: raw batch": compression("raw batch"),
            **{f"USD/month per 1M readings: {tier}": round(usd, 6) for tier, usd in monthly.items()},
            f"{steady}: tiered USD/month": round(tiered, 2),
            f"{steady}: all hot USD/month": round(all_hot, 2),
            f"{steady}: cost ratio tiered / all hot": round(tiered / all_hot, 4),
        },
    )
