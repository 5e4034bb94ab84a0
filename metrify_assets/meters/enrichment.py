"""`enriched_meter_readings`: each reading with its context, one day partition at a time.

A run enriches the readings of its days only (meter metadata, local date and hour, time-of-use
period, the hour's temperature at the meter's weather station, the anomaly score), so its cost
follows the days it covers, not the table's history. A meter not in the registry gets segment and
region `unknown` and the quality flag `unknown_meter`, never a failure.
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

import dagster as dg

from metrify_assets.contracts import UNREGISTERED
from metrify_assets.errors import RETRY_POLICY, classified_step
from metrify_assets.metadata import markdown_table
from metrify_assets.meters.days import DAY_WINDOW, LOCAL_TS, day_params
from metrify_assets.meters.time_of_use import tou_sql
from metrify_assets.partitions import DAYS, SINGLE_RUN, partition_days
from metrify_assets.quality import gx
from metrify_assets.quality.checks import failure_summary, suite_check_result
from metrify_assets.resources import PostgresResource
from metrify_assets.storage import rebuilt
from metrify_assets.storage.frames import read_frame
from metrify_assets.teams import DATA_ENGINEERING, owner

OWNERS = [owner(DATA_ENGINEERING)]
GX_SAMPLE_ROWS = 100_000  # the suite sees every row of a run up to this, a random sample beyond

ENRICH_SQL = f"""
WITH local AS (
    SELECT r.meter_id, r.reading_start, r.interval_minutes, r.energy_kwh, r.direction,
           coalesce(m.segment, '{UNREGISTERED}') AS segment, coalesce(m.region, '{UNREGISTERED}') AS region,
           m.tariff, m.weather_station_id, {LOCAL_TS} AS local_ts,
           CASE WHEN m.meter_id IS NULL THEN 'unknown_meter' END AS quality_flags
    FROM ops.meter_readings r
    LEFT JOIN ops.meters m USING (meter_id)
    WHERE {DAY_WINDOW}
), weather AS (
    SELECT station_id, date_trunc('hour', observed_at) AS hour, avg(temperature_c) AS temperature_c
    FROM ops.weather_observations
    WHERE observed_at >= ((%(first)s::date - 1)::timestamp AT TIME ZONE 'UTC')
      AND observed_at < ((%(last)s::date + 2)::timestamp AT TIME ZONE 'UTC')
    GROUP BY 1, 2
)
INSERT INTO ops.enriched_meter_readings AS t (
    meter_id, reading_start, interval_minutes, energy_kwh, direction, segment, region, tariff,
    tou_period, local_date, local_hour, temperature_c, anomaly_score, is_anomaly, quality_flags)
SELECT l.meter_id, l.reading_start, l.interval_minutes, l.energy_kwh, l.direction, l.segment, l.region,
       l.tariff,
       {tou_sql("extract(hour FROM l.local_ts)", "extract(dow FROM l.local_ts)")},
       l.local_ts::date, extract(hour FROM l.local_ts)::int, w.temperature_c, a.score, a.is_anomaly,
       l.quality_flags
FROM local l
LEFT JOIN weather w ON w.station_id = l.weather_station_id AND w.hour = date_trunc('hour', l.reading_start)
LEFT JOIN ops.anomaly_scores a ON a.meter_id = l.meter_id AND a.reading_start = l.reading_start
ON CONFLICT (meter_id, reading_start) DO UPDATE SET
    interval_minutes = excluded.interval_minutes, energy_kwh = excluded.energy_kwh,
    direction = excluded.direction, segment = excluded.segment, region = excluded.region,
    tariff = excluded.tariff, tou_period = excluded.tou_period, local_date = excluded.local_date,
    local_hour = excluded.local_hour, temperature_c = excluded.temperature_c,
    anomaly_score = excluded.anomaly_score, is_anomaly = excluded.is_anomaly,
    quality_flags = excluded.quality_flags, enriched_at = now()
"""

RUN_ROWS = "FROM ops.enriched_meter_readings WHERE local_date BETWEEN %(first)s::date AND %(last)s::date"


@dg.asset(
    deps=["validated_meter_readings", "meter_registry", "anomaly_scores", "validated_weather_observations"],
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name="meters",
    kinds={"postgres", "sql"},
    owners=OWNERS,
    description="Meter readings with meter metadata (`unknown` for meters not in the registry), local "
    "date/hour, time-of-use period, the hour's temperature at the meter's weather station and the "
    "anomaly score, in ops.enriched_meter_readings; each run enriches its days only.",
    metadata={"table": "ops.enriched_meter_readings", "partitioned_by": "local day of the meter"},
    check_specs=[
        dg.AssetCheckSpec(
            "gx_enriched_meter_readings",
            asset="enriched_meter_readings",
            blocking=True,
            description="GX suite enriched_meter_readings on the run's enriched rows (a random sample of "
            f"{GX_SAMPLE_ROWS:,} beyond that many): keys, local date and hour and time-of-use period not null, "
            "hour 0-23, period and segment from their sets, one row per meter and reading start. A failure "
            "rolls the enrichment back, fails the run and stops the assets downstream (marts).",
        )
    ],
    retry_policy=RETRY_POLICY,
)
@classified_step
def enriched_meter_readings(
    context: dg.AssetExecutionContext, postgres: PostgresResource
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    params = day_params(first, last)
    with postgres.connect() as conn:
        began = rebuilt.begin(conn)
        with conn.cursor() as cur:
            cur.execute(ENRICH_SQL.encode(), params)
            written = cur.rowcount
        sample = read_frame(
            conn,
            f"SELECT * {RUN_ROWS} ORDER BY random() LIMIT {GX_SAMPLE_ROWS}"
            if written > GX_SAMPLE_ROWS
            else f"SELECT * {RUN_ROWS}",
            params,
        )
        suite = gx.validate("enriched_meter_readings", sample)
        if not suite.success:
            conn.rollback()
            raise dg.Failure(
                f"enriched_meter_readings suite failed; enrichment rolled back. {failure_summary(suite)}",
                metadata=suite_check_result(suite).metadata,
                allow_retries=False,
            )
        rebuilt.stamp(conn, "enriched_meter_readings", first, last, began)
        by_tou = read_frame(
            conn,
            "SELECT tou_period, count(*) AS readings, round(sum(energy_kwh)::numeric, 1) AS kwh "
            f"{RUN_ROWS} GROUP BY 1 ORDER BY 1",
            params,
        )
        unmatched = read_frame(
            conn,
            "SELECT count(*) FILTER (WHERE quality_flags = 'unknown_meter') AS no_meter, "
            f"count(*) FILTER (WHERE temperature_c IS NULL) AS no_weather {RUN_ROWS}",
            params,
        ).iloc[0]
    context.log.info(f"enriched {written} readings of {first}..{last}")
    return dg.MaterializeResult(
        metadata={
            "days": dg.MetadataValue.text(f"{first} .. {last}"),
            "rows_written": dg.MetadataValue.int(written),
            "gx_rows_checked": dg.MetadataValue.int(len(sample)),
            "kwh_by_tou_period": dg.MetadataValue.md(
                markdown_table(by_tou) if len(by_tou) else "no readings in these days"
            ),
            "unknown_meter": dg.MetadataValue.int(int(unmatched["no_meter"] or 0)),
            "without_weather": dg.MetadataValue.int(int(unmatched["no_weather"] or 0)),
        },
        check_results=[suite_check_result(suite, blocking_description="Guards ops.enriched_meter_readings.")],
    )
