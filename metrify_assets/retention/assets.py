"""`archive_daily_readings`: the first archive tier, one zstd Parquet file per UTC day in the lake."""

import dagster as dg
import pandas as pd
from pydantic import Field

from metrify_assets.metadata import markdown_table
from metrify_assets.resources import LakeResource, PostgresResource
from metrify_assets.retention.parquet import to_parquet_bytes
from metrify_assets.storage.frames import read_frame
from metrify_assets.storage.migrate import migrate

OWNERS = ["team:data-engineering"]
COLUMNS = (
    "meter_id, reading_start, interval_minutes, energy_kwh, direction, register_kwh, voltage_v, "
    "power_factor, status_flags, source, record_version, batch_id, quality_flags"
)


def archive_key(day: str) -> str:
    return f"curated/meter_readings/dt={day}/meter_readings.parquet"


class ArchiveConfig(dg.Config):
    max_days: int = Field(default=62, description="Archive at most this many of the newest days per run.")


@dg.asset(
    deps=["validated_meter_readings"],
    group_name="retention",
    kinds={"s3", "parquet"},
    owners=OWNERS,
    description="Daily archive of accepted meter readings: Parquet (zstd) under curated/meter_readings/dt=...; "
    "rewritten byte-for-byte identically while the day's rows are unchanged.",
    metadata={"lake_prefix": "curated/meter_readings/"},
)
def archive_daily_readings(
    context: dg.AssetExecutionContext, config: ArchiveConfig, postgres: PostgresResource, lake: LakeResource
) -> dg.MaterializeResult:
    store = lake.get_lake()
    with postgres.connect() as conn:
        migrate(conn)
        days = [
            str(row[0])
            for row in conn.execute(
                "SELECT DISTINCT (reading_start AT TIME ZONE 'UTC')::date AS d FROM ops.meter_readings "
                "ORDER BY d DESC LIMIT %s",
                (config.max_days,),
            ).fetchall()
        ]
        written: list[dict[str, object]] = []
        for day in sorted(days):
            frame = read_frame(
                conn,
                f"SELECT {COLUMNS} FROM ops.meter_readings WHERE reading_start >= %(d)s::date AT TIME ZONE 'UTC' "
                "AND reading_start < (%(d)s::date + 1) AT TIME ZONE 'UTC' ORDER BY meter_id, reading_start",
                {"d": day},
            )
            body = to_parquet_bytes(frame)
            store.put(archive_key(day), body, content_type="application/vnd.apache.parquet")
            written.append({"day": day, "rows": len(frame), "bytes": len(body)})
            context.log.info(f"archived {day}: {len(frame)} rows, {len(body)} bytes")
    summary = pd.DataFrame(written, columns=["day", "rows", "bytes"])
    return dg.MaterializeResult(
        metadata={
            "days": dg.MetadataValue.int(len(summary)),
            "rows": dg.MetadataValue.int(int(summary["rows"].sum())),
            "bytes": dg.MetadataValue.int(int(summary["bytes"].sum())),
            "bytes_per_reading": dg.MetadataValue.float(
                float(summary["bytes"].sum() / max(int(summary["rows"].sum()), 1))
            ),
            "files": dg.MetadataValue.md(markdown_table(summary)),
            "uri": dg.MetadataValue.path(store.uri("curated/meter_readings/")),
        }
    )


defs = dg.Definitions(assets=[archive_daily_readings])
