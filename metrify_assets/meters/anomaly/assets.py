"""`anomaly_model` (trained weekly on a window, versioned in the lake) and `anomaly_scores` (each day
partition scored with the stored model).

Training reads its window once a week; scoring a day reads only that day's readings and the model's
few thousand rows, so an hourly refresh costs the same a year in as on the first day. Every score
records the version of the model that produced it.
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

import io
import json
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import pandas as pd
import psycopg
from pydantic import Field

from metrify_assets.metadata import markdown_table
from metrify_assets.meters.anomaly_model import (
    MODEL_KIND,
    THRESHOLD,
    fit_model,
    model_version,
    score_readings,
)
from metrify_assets.meters.days import day_params, readings_of_days_sql
from metrify_assets.partitions import DAYS, SINGLE_RUN, partition_days
from metrify_assets.quality import gx
from metrify_assets.quality.checks import suite_check_result
from metrify_assets.resources import LakeResource, PostgresResource
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.frames import read_frame
from metrify_assets.storage.parquet import to_parquet_bytes

OWNERS = ["team:data-science"]
MODEL_PREFIX = "models/anomaly"
CURRENT_KEY = f"{MODEL_PREFIX}/current.json"
TRAINING_DAYS = 28
READINGS = "r.meter_id, r.reading_start, r.energy_kwh"


@dataclass(frozen=True)
class StoredModel:
    version: str
    trained_from: str
    trained_to: str
    table: pd.DataFrame

    @property
    def key(self) -> str:
        return f"{MODEL_PREFIX}/{self.version}/model.parquet"


def read_readings(conn: psycopg.Connection, first: date, last: date) -> pd.DataFrame:
    """meter_id, reading_start (UTC), energy_kwh of the readings in local days `first`..`last`."""
    readings = read_frame(conn, readings_of_days_sql(READINGS), day_params(first, last))
    readings["reading_start"] = pd.to_datetime(readings["reading_start"], utc=True)
    return readings


def train(
    conn: psycopg.Connection, lake: Lake, last_day: date, days: int = TRAINING_DAYS
) -> StoredModel | None:
    """Fit on the `days` local days up to `last_day`, store the model and make it current.

    No readings in the window: no model (an empty one made current would keep the first real
    readings from ever training one before the weekly run).
    """
    first = last_day - timedelta(days=days - 1)
    readings = read_readings(conn, first, last_day)
    if readings.empty:
        return None
    table = fit_model(readings)
    trained_from, trained_to = first.isoformat(), last_day.isoformat()
    model = StoredModel(model_version(table, trained_from, trained_to), trained_from, trained_to, table)
    lake.put(model.key, to_parquet_bytes(table), content_type="application/vnd.apache.parquet")
    pointer = {
        "version": model.version,
        "kind": MODEL_KIND,
        "trained_from": model.trained_from,
        "trained_to": model.trained_to,
        "training_readings": len(readings),
        "meters": int(table["meter_id"].nunique()),
        "key": model.key,
    }
    lake.put(CURRENT_KEY, json.dumps(pointer, indent=2).encode(), content_type="application/json")
    return model


def load_current(lake: Lake) -> StoredModel | None:
    """The model the last training made current, or None before the first training."""
    if not lake.exists(CURRENT_KEY):
        return None
    pointer = json.loads(lake.get(CURRENT_KEY))
    table = pd.read_parquet(io.BytesIO(lake.get(pointer["key"])))
    return StoredModel(pointer["version"], pointer["trained_from"], pointer["trained_to"], table)


def newest_reading_day(conn: psycopg.Connection) -> date | None:
    """The newest local day a batch brought meter readings for (from the small `ops.ingest_days`,
    not a scan of the readings)."""
    row = conn.execute(
        "SELECT max(day) FROM ops.ingest_days WHERE source = 'meter_readings' AND records > 0"
    ).fetchone()
    return row[0] if row else None


class AnomalyModelConfig(dg.Config):
    training_days: int = Field(
        default=TRAINING_DAYS, description="Local days of readings the model learns from."
    )
    last_day: str = Field(
        default="", description="Last training day (YYYY-MM-DD); empty: the day of the newest reading."
    )


@dg.asset(
    deps=["validated_meter_readings"],
    group_name="meters",
    kinds={"s3", "parquet", "pandas"},
    owners=OWNERS,
    description="Anomaly model: median and robust scale of energy per meter and hour of day over a training "
    "window (default 28 days), versioned in the lake under models/anomaly/ (current.json names the version "
    "that scores). Retrained weekly.",
    metadata={"lake_prefix": f"{MODEL_PREFIX}/", "kind": MODEL_KIND},
)
def anomaly_model(
    context: dg.AssetExecutionContext,
    config: AnomalyModelConfig,
    postgres: PostgresResource,
    lake: LakeResource,
) -> dg.MaterializeResult:
    store = lake.get_lake()
    with postgres.connect() as conn:
        last_day = date.fromisoformat(config.last_day) if config.last_day else newest_reading_day(conn)
        model = train(conn, store, last_day, config.training_days) if last_day else None
    if model is None:
        return dg.MaterializeResult(
            metadata={"note": dg.MetadataValue.text("No meter readings in the window: nothing to train on.")}
        )
    context.log.info(f"trained {model.version} on {model.trained_from}..{model.trained_to}")
    return dg.MaterializeResult(
        metadata={
            "model_version": dg.MetadataValue.text(model.version),
            "trained_from": dg.MetadataValue.text(model.trained_from),
            "trained_to": dg.MetadataValue.text(model.trained_to),
            "meters": dg.MetadataValue.int(int(model.table["meter_id"].nunique())),
            "meter_hours": dg.MetadataValue.int(len(model.table)),
            "uri": dg.MetadataValue.path(store.uri(model.key)),
        }
    )


class AnomalyScoresConfig(dg.Config):
    threshold: float = Field(
        default=THRESHOLD, description="Score above which a reading is an anomaly (upward deviations only)."
    )


@dg.asset(
    deps=["validated_meter_readings", "anomaly_model"],
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name="meters",
    kinds={"postgres", "pandas"},
    owners=OWNERS,
    description="Anomaly score per meter reading of the run's days, from the current anomaly model (the "
    "model version recorded per score), in ops.anomaly_scores. Before the first training, the first run "
    "trains one on the 28 days up to its last day.",
    metadata={"table": "ops.anomaly_scores", "partitioned_by": "local day of the meter"},
    check_specs=[dg.AssetCheckSpec("gx_anomaly_scores", asset="anomaly_scores", blocking=True)],
)
def anomaly_scores(
    context: dg.AssetExecutionContext,
    config: AnomalyScoresConfig,
    postgres: PostgresResource,
    lake: LakeResource,
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    store = lake.get_lake()
    with postgres.connect() as conn:
        readings = read_readings(conn, first, last)
        model = load_current(store)
        if model is None and len(readings):
            model = train(conn, store, last)
            context.log.warning("no anomaly model yet: trained one on the 28 days up to this run's last")
        # No model only when there are no readings: scoring them against an empty model is a no-op.
        table, version = (model.table, model.version) if model else (fit_model(readings), "none")
        scores, unscored = score_readings(readings, table, version, threshold=config.threshold)
        suite = gx.validate("anomaly_scores", scores)
        check = suite_check_result(suite, blocking_description="Guards the write to ops.anomaly_scores.")
        if not suite.success:
            raise dg.Failure(f"anomaly_scores suite failed; nothing written. {check.metadata}")
        write_scores(conn, scores)
    anomalies = int(scores["is_anomaly"].sum()) if len(scores) else 0
    context.log.info(f"scored {len(scores)} readings of {first}..{last}, {anomalies} anomalies")
    top = (
        scores.assign(score=scores["score"].astype("float64")).nlargest(10, "score")
        if len(scores)
        else scores
    )
    return dg.MaterializeResult(
        metadata={
            "days": dg.MetadataValue.text(f"{first} .. {last}"),
            "model_version": dg.MetadataValue.text(model.version if model else "none (no meter readings)"),
            "scored": dg.MetadataValue.int(len(scores)),
            "unscored_new_meters": dg.MetadataValue.int(unscored),
            "anomalies": dg.MetadataValue.int(anomalies),
            "anomaly_rate": dg.MetadataValue.float(anomalies / max(len(scores), 1)),
            "meters": dg.MetadataValue.int(int(scores["meter_id"].nunique())),
            "top_scores": dg.MetadataValue.md(
                markdown_table(top[["meter_id", "reading_start", "score"]]) if len(top) else "no readings"
            ),
        },
        check_results=[check],
    )


def write_scores(conn: psycopg.Connection, scores: pd.DataFrame) -> None:
    """Merge scores by (meter_id, reading_start): a re-scored day replaces its scores."""
    if scores.empty:
        return
    with conn.cursor() as cur, conn.transaction():
        cur.execute("CREATE TEMP TABLE _scores (LIKE ops.anomaly_scores INCLUDING DEFAULTS) ON COMMIT DROP")
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
