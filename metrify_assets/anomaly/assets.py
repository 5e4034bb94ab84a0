"""The `anomaly_scores` asset: scores the recent window of accepted meter readings."""

import dagster as dg
import pandas as pd
from pydantic import Field

from metrify_assets.anomaly.scoring import MODEL_VERSION, THRESHOLD, score_readings
from metrify_assets.metadata import markdown_table
from metrify_assets.quality import gx
from metrify_assets.quality.checks import suite_check_result
from metrify_assets.resources import PostgresResource
from metrify_assets.storage.frames import read_frame
from metrify_assets.storage.migrate import migrate

OWNERS = ["team:data-science"]


class AnomalyConfig(dg.Config):
    lookback_days: int = Field(default=28, description="Days of readings (before the newest) to score.")
    threshold: float = Field(
        default=THRESHOLD, description="Score above which a reading is an anomaly (upward deviations only)."
    )


@dg.asset(
    deps=["validated_meter_readings"],
    group_name="anomaly",
    kinds={"postgres", "pandas"},
    owners=OWNERS,
    description=(
        "Robust seasonal anomaly score per meter reading (median/MAD per meter and hour of day), "
        "with the model version recorded, in ops.anomaly_scores."
    ),
    metadata={"table": "ops.anomaly_scores", "model_version": MODEL_VERSION},
    check_specs=[dg.AssetCheckSpec("gx_anomaly_scores", asset="anomaly_scores", blocking=True)],
)
def anomaly_scores(
    context: dg.AssetExecutionContext, config: AnomalyConfig, postgres: PostgresResource
) -> dg.MaterializeResult:
    with postgres.connect() as conn:
        migrate(conn)
        readings = read_frame(
            conn,
            "SELECT meter_id, reading_start, energy_kwh FROM ops.meter_readings "
            "WHERE reading_start > (SELECT max(reading_start) FROM ops.meter_readings) "
            "- make_interval(days => %(days)s)",
            {"days": config.lookback_days},
        )
        readings["reading_start"] = pd.to_datetime(readings["reading_start"], utc=True)
        scores = score_readings(readings, threshold=config.threshold)
        suite = gx.validate("anomaly_scores", scores)
        check = suite_check_result(suite, blocking_description="Guards the write to ops.anomaly_scores.")
        if not suite.success:
            raise dg.Failure(f"anomaly_scores suite failed; nothing written. {check.metadata}")
        with conn.cursor() as cur, conn.transaction():
            cur.execute(
                "CREATE TEMP TABLE _scores (LIKE ops.anomaly_scores INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            with cur.copy(
                "COPY _scores (meter_id, reading_start, score, is_anomaly, model_version) FROM STDIN"
            ) as copy:
                for row in scores.itertuples(index=False, name=None):
                    copy.write_row(row)
            cur.execute(
                "INSERT INTO ops.anomaly_scores AS t (meter_id, reading_start, score, is_anomaly, "
                "model_version) SELECT meter_id, reading_start, score, is_anomaly, model_version FROM _scores "
                "ON CONFLICT (meter_id, reading_start) DO UPDATE SET score = excluded.score, "
                "is_anomaly = excluded.is_anomaly, model_version = excluded.model_version, scored_at = now()"
            )
    anomalies = int(scores["is_anomaly"].sum())
    context.log.info(f"scored {len(scores)} readings, {anomalies} anomalies")
    top = scores.loc[scores["score"].abs().nlargest(10).index, ["meter_id", "reading_start", "score"]]
    return dg.MaterializeResult(
        metadata={
            "scored": dg.MetadataValue.int(len(scores)),
            "anomalies": dg.MetadataValue.int(anomalies),
            "anomaly_rate": dg.MetadataValue.float(anomalies / max(len(scores), 1)),
            "meters": dg.MetadataValue.int(int(scores["meter_id"].nunique())),
            "top_scores": dg.MetadataValue.md(markdown_table(top)),
        },
        check_results=[check],
    )


defs = dg.Definitions(assets=[anomaly_scores])
