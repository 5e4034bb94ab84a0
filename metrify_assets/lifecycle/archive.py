"""`archive_daily_readings`: the first archive tier, one zstd Parquet file per day partition in the lake.

A day is the meters' local day, as for every day-partitioned asset; a run archives its own days, and
rewrites a day's file byte for byte identically while the day's rows are unchanged.
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

from datetime import timedelta

import dagster as dg
import pandas as pd

from metrify_assets.metadata import markdown_table
from metrify_assets.meters.days import day_params, readings_of_days_sql
from metrify_assets.partitions import DAYS, SINGLE_RUN, partition_days
from metrify_assets.resources import LakeResource, PostgresResource
from metrify_assets.storage.frames import read_frame
from metrify_assets.storage.parquet import to_parquet_bytes

OWNERS = ["team:data-engineering"]
COLUMNS = ", ".join(
    f"r.{c}"
    for c in [
        "meter_id",
        "reading_start",
        "interval_minutes",
        "energy_kwh",
        "direction",
        "register_kwh",
        "voltage_v",
        "power_factor",
        "status_flags",
        "source",
        "record_version",
        "batch_id",
        "quality_flags",
    ]
)


def archive_key(day: str) -> str:
    return f"curated/meter_readings/dt={day}/meter_readings.parquet"


@dg.asset(
    deps=["validated_meter_readings"],
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name="lifecycle",
    kinds={"s3", "parquet"},
    owners=OWNERS,
    description="Daily archive of accepted meter readings: Parquet (zstd) under curated/meter_readings/dt=... "
    "(the meters' local day); rewritten byte-for-byte identically while the day's rows are unchanged.",
    metadata={"lake_prefix": "curated/meter_readings/", "partitioned_by": "local day of the meter"},
)
def archive_daily_readings(
    context: dg.AssetExecutionContext, postgres: PostgresResource, lake: LakeResource
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    store = lake.get_lake()
    written: list[dict[str, object]] = []
    with postgres.connect() as conn:
        day = first
        while day <= last:
            frame = read_frame(
                conn, readings_of_days_sql(COLUMNS, "r.meter_id, r.reading_start"), day_params(day, day)
            )
            if len(frame):
                body = to_parquet_bytes(frame)
                store.put(archive_key(day.isoformat()), body, content_type="application/vnd.apache.parquet")
                written.append({"day": day.isoformat(), "rows": len(frame), "bytes": len(body)})
                context.log.info(f"archived {day}: {len(frame)} rows, {len(body)} bytes")
            day += timedelta(days=1)
    summary = pd.DataFrame(written, columns=["day", "rows", "bytes"])
    rows, size = int(summary["rows"].sum()), int(summary["bytes"].sum())
    return dg.MaterializeResult(
        metadata={
            "days": dg.MetadataValue.int(len(summary)),
            "rows": dg.MetadataValue.int(rows),
            "bytes": dg.MetadataValue.int(size),
            "bytes_per_reading": dg.MetadataValue.float(size / max(rows, 1)),
            "files": dg.MetadataValue.md(
                markdown_table(summary) if len(summary) else f"no readings in {first} .. {last}"
            ),
            "uri": dg.MetadataValue.path(store.uri("curated/meter_readings/")),
        }
    )


defs = dg.Definitions(assets=[archive_daily_readings])
