"""`meter_registry` (reference data) and `enriched_meter_readings` (readings with context)."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from metrify_assets.contracts import METER_REGISTRY_COLUMNS
from metrify_assets.enrichment.tou import tou_sql
from metrify_assets.metadata import markdown_table
from metrify_assets.quality import gx
from metrify_assets.quality.checks import suite_check_result
from metrify_assets.resources import LandingResource, PostgresResource
from metrify_assets.storage.frames import read_frame
from metrify_assets.storage.migrate import migrate

OWNERS = ["team:data-engineering"]
REGISTRY_COLUMNS = list(METER_REGISTRY_COLUMNS)


@dg.asset(
    group_name="reference",
    kinds={"postgres", "csv"},
    owners=OWNERS,
    description="Meter registry (segment, region, weather station, grid node, tariff, timezone) in ops.meters, "
    "loaded from the head-end's reference file `<landing>/reference/meters.csv`.",
    metadata={"table": "ops.meters"},
)
def meter_registry(landing: LandingResource, postgres: PostgresResource) -> dg.MaterializeResult:
    path = landing.path / "reference" / "meters.csv"
    if not path.is_file():
        raise dg.Failure(f"Meter registry file not found: {path} (`metrify simulate` writes one).")
    meters = pd.read_csv(path, dtype=str)
    missing = set(REGISTRY_COLUMNS) - set(meters.columns)
    if missing:
        raise dg.Failure(f"{path} lacks columns: {', '.join(sorted(missing))}")
    rows = meters[REGISTRY_COLUMNS].astype(object).where(meters[REGISTRY_COLUMNS].notna(), None)
    cols = ", ".join(REGISTRY_COLUMNS)
    sets = ", ".join(f"{c} = excluded.{c}" for c in REGISTRY_COLUMNS[1:])
    with postgres.connect() as conn:
        migrate(conn)
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO ops.meters ({cols}) VALUES ({', '.join(['%s'] * len(REGISTRY_COLUMNS))}) "
                f"ON CONFLICT (meter_id) DO UPDATE SET {sets}, updated_at = now()",
                list(rows.itertuples(index=False, name=None)),
            )
    return dg.MaterializeResult(
        metadata={
            "meters": dg.MetadataValue.int(len(meters)),
            "by_segment": dg.MetadataValue.json(
                {str(k): int(v) for k, v in meters["segment"].value_counts().items()}
            ),
            "source_file": dg.MetadataValue.path(str(path)),
        }
    )


ENRICH_SQL = f"""
WITH local AS (
    SELECT r.meter_id, r.reading_start, r.interval_minutes, r.energy_kwh, r.direction,
           m.segment, m.region, m.tariff, m.weather_station_id,
           (r.reading_start AT TIME ZONE COALESCE(m.timezone, 'UTC')) AS local_ts
    FROM ops.meter_readings r
    LEFT JOIN ops.meters m USING (meter_id)
), weather AS (
    SELECT station_id, date_trunc('hour', observed_at) AS hour, avg(temperature_c) AS temperature_c
    FROM ops.weather_observations
    GROUP BY 1, 2
)
INSERT INTO ops.enriched_meter_readings AS t (
    meter_id, reading_start, interval_minutes, energy_kwh, direction, segment, region, tariff,
    tou_period, local_date, local_hour, temperature_c, anomaly_score, is_anomaly)
SELECT l.meter_id, l.reading_start, l.interval_minutes, l.energy_kwh, l.direction, l.segment, l.region,
       l.tariff,
       {tou_sql("extract(hour FROM l.local_ts)", "extract(dow FROM l.local_ts)")},
       l.local_ts::date, extract(hour FROM l.local_ts)::int, w.temperature_c, a.score, a.is_anomaly
FROM local l
LEFT JOIN weather w ON w.station_id = l.weather_station_id AND w.hour = date_trunc('hour', l.reading_start)
LEFT JOIN ops.anomaly_scores a ON a.meter_id = l.meter_id AND a.reading_start = l.reading_start
ON CONFLICT (meter_id, reading_start) DO UPDATE SET
    interval_minutes = excluded.interval_minutes, energy_kwh = excluded.energy_kwh,
    direction = excluded.direction, segment = excluded.segment, region = excluded.region,
    tariff = excluded.tariff, tou_period = excluded.tou_period, local_date = excluded.local_date,
    local_hour = excluded.local_hour, temperature_c = excluded.temperature_c,
    anomaly_score = excluded.anomaly_score, is_anomaly = excluded.is_anomaly
"""


@dg.asset(
    deps=["validated_meter_readings", "meter_registry", "anomaly_scores", "validated_weather_observations"],
    group_name="enrichment",
    kinds={"postgres", "sql"},
    owners=OWNERS,
    description="Meter readings with meter metadata, local date/hour, time-of-use period, the hour's "
    "temperature at the meter's weather station and the anomaly score, in ops.enriched_meter_readings.",
    metadata={"table": "ops.enriched_meter_readings"},
    check_specs=[
        dg.AssetCheckSpec("gx_enriched_meter_readings", asset="enriched_meter_readings", blocking=True)
    ],
)
def enriched_meter_readings(postgres: PostgresResource) -> dg.MaterializeResult:
    with postgres.connect() as conn:
        migrate(conn)
        with conn.cursor() as cur:
            cur.execute(ENRICH_SQL)
            written = cur.rowcount
        sample = read_frame(
            conn,
            "SELECT * FROM ops.enriched_meter_readings ORDER BY random() LIMIT 100000",
        )
        suite = gx.validate("enriched_meter_readings", sample)
        if not suite.success:
            conn.rollback()
            raise dg.Failure(f"enriched_meter_readings suite failed; enrichment rolled back: {suite}")
        by_tou = read_frame(
            conn,
            "SELECT tou_period, count(*) AS readings, round(sum(energy_kwh)::numeric, 1) AS kwh "
            "FROM ops.enriched_meter_readings GROUP BY 1 ORDER BY 1",
        )
        unmatched = read_frame(
            conn,
            "SELECT count(*) FILTER (WHERE segment IS NULL) AS no_meter, "
            "count(*) FILTER (WHERE temperature_c IS NULL) AS no_weather FROM ops.enriched_meter_readings",
        ).iloc[0]
    return dg.MaterializeResult(
        metadata={
            "rows_written": dg.MetadataValue.int(written),
            "kwh_by_tou_period": dg.MetadataValue.md(markdown_table(by_tou)),
            "without_meter_metadata": dg.MetadataValue.int(int(unmatched["no_meter"])),
            "without_weather": dg.MetadataValue.int(int(unmatched["no_weather"])),
        },
        check_results=[suite_check_result(suite, blocking_description="Guards ops.enriched_meter_readings.")],
    )


defs = dg.Definitions(assets=[meter_registry, enriched_meter_readings])
