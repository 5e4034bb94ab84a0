"""`anomaly_model` (both models trained weekly on a window, versioned in the lake) and `anomaly_scores`
(each day partition scored with the stored models, side by side).

Training reads its window once a week; scoring a day reads only that day's readings, the weather
around it and the stored models, so an hourly refresh costs the same a year in as on the first day.
Every score records the version of the models that produced it.
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

from datetime import date, timedelta

import dagster as dg
import pandas as pd
import psycopg
from pydantic import Field

from metrify_assets.errors import RETRY_POLICY, classified_step
from metrify_assets.metadata import figure, markdown_table
from metrify_assets.meters.anomaly import baseline as baseline_model
from metrify_assets.meters.anomaly import features
from metrify_assets.meters.anomaly import model as expected_model
from metrify_assets.meters.anomaly.inputs import read_readings, read_registry, read_weather
from metrify_assets.meters.anomaly.scoring import (
    DAY_THRESHOLD,
    READING_THRESHOLD,
    RunScores,
    empty_scores,
    score_run,
)
from metrify_assets.meters.anomaly.store import MODEL_PREFIX, StoredModels, load_current, save
from metrify_assets.meters.anomaly.writes import write_scores
from metrify_assets.partitions import DAYS, SINGLE_RUN, partition_days
from metrify_assets.quality import gx
from metrify_assets.quality.checks import failure_summary, suite_check_result
from metrify_assets.resources import LakeResource, PostgresResource
from metrify_assets.resources.lake import Lake
from metrify_assets.storage import rebuilt
from metrify_assets.teams import DATA_SCIENCE, owner

OWNERS = [owner(DATA_SCIENCE)]
TRAINING_DAYS = 28


def train(
    conn: psycopg.Connection,
    lake: Lake,
    last_day: date,
    days: int = TRAINING_DAYS,
    country: str = features.DEFAULT_COUNTRY,
    holdout_days: int = expected_model.HOLDOUT_DAYS,
) -> tuple[StoredModels, str] | None:
    """Fit both models on the `days` local days up to `last_day`, store them and make them current;
    returns them and the URI of their description.

    No readings in the window: no model (an empty one made current would keep the first real
    readings from ever training one before the weekly run).
    """
    first = last_day - timedelta(days=days - 1)
    readings = read_readings(conn, first, last_day)
    if readings.empty:
        return None
    prepared = features.prepare(readings, read_registry(conn), read_weather(conn, first, last_day), country)
    trained_from, trained_to = first.isoformat(), last_day.isoformat()
    fitted = expected_model.fit(prepared, trained_from, trained_to, country, holdout_days=holdout_days)
    if fitted is None:
        return None
    table = baseline_model.fit_baseline(readings)
    models = StoredModels(fitted, table, baseline_model.baseline_version(table, trained_from, trained_to))
    return models, save(lake, models)


def newest_reading_day(conn: psycopg.Connection) -> date | None:
    """The newest local day a batch brought meter readings for (from the small `ops.ingest_days`,
    not a scan of the readings)."""
    row = conn.execute(
        "SELECT max(day) FROM ops.ingest_days WHERE source = 'meter_readings' AND records > 0"
    ).fetchone()
    return row[0] if row else None


class AnomalyModelConfig(dg.Config):
    training_days: int = Field(
        default=TRAINING_DAYS, description="Local days of readings the models learn from."
    )
    last_day: str = Field(
        default="", description="Last training day (YYYY-MM-DD); empty: the day of the newest reading."
    )
    holiday_country: str = Field(
        default=features.DEFAULT_COUNTRY,
        description="Country (ISO code, `holidays` package) whose public holidays are a feature.",
    )
    holdout_days: int = Field(
        default=expected_model.HOLDOUT_DAYS,
        description="Last days of the window held out for metrics and residual calibration.",
    )


@dg.asset(
    deps=["validated_meter_readings", "meter_registry", "validated_weather_observations"],
    group_name="meters",
    kinds={"s3", "scikitlearn", "pandas"},
    owners=OWNERS,
    description="Anomaly models, trained weekly on a window (default 28 days): a gradient-boosted "
    "expected-consumption model (local hour, weekday, holiday, temperature, segment, the meter's level) "
    "with its residual calibration, and the robust seasonal baseline (median and robust scale per meter "
    "and UTC hour). Versioned in the lake under `models/anomaly/<version>/`; `current.json` names the "
    "version that scores.",
    metadata={"lake_prefix": f"{MODEL_PREFIX}/", "kind": expected_model.MODEL_KIND},
    retry_policy=RETRY_POLICY,
)
@classified_step
def anomaly_model(
    context: dg.AssetExecutionContext,
    config: AnomalyModelConfig,
    postgres: PostgresResource,
    lake: LakeResource,
) -> dg.MaterializeResult:
    store = lake.get_lake()
    with postgres.connect() as conn:
        last_day = date.fromisoformat(config.last_day) if config.last_day else newest_reading_day(conn)
        trained = (
            train(conn, store, last_day, config.training_days, config.holiday_country, config.holdout_days)
            if last_day
            else None
        )
    if trained is None:
        return dg.MaterializeResult(
            metadata={"note": dg.MetadataValue.text("No meter readings in the window: nothing to train on.")}
        )
    models, uri = trained
    fitted = models.model
    context.log.info(f"trained {models.version} on {fitted.trained_from}..{fitted.trained_to}")
    metrics = pd.DataFrame({"metric": list(fitted.metrics), "value": list(fitted.metrics.values())})
    importance = pd.DataFrame(
        {"feature": list(fitted.importance), "R^2 drop when shuffled": list(fitted.importance.values())}
    ).sort_values("R^2 drop when shuffled", ascending=False)
    return dg.MaterializeResult(
        metadata={
            "model_version": dg.MetadataValue.text(models.version),
            "baseline_version": dg.MetadataValue.text(models.baseline_version),
            "trained_from": dg.MetadataValue.text(fitted.trained_from),
            "trained_to": dg.MetadataValue.text(fitted.trained_to),
            "features": dg.MetadataValue.text(", ".join(expected_model.FEATURES)),
            "holiday_country": dg.MetadataValue.text(fitted.country),
            "meters": dg.MetadataValue.int(len(fitted.meters)),
            "holdout_mae_kwh": figure(fitted.metrics["mae_kwh"]),
            "holdout_r2": figure(fitted.metrics["r2"]),
            "metrics": dg.MetadataValue.md(markdown_table(metrics)),
            "feature_importance": dg.MetadataValue.md(
                markdown_table(importance) if len(importance) else "too few held-out readings"
            ),
            "uri": dg.MetadataValue.path(uri),
        }
    )


class AnomalyScoresConfig(dg.Config):
    threshold: float = Field(
        default=READING_THRESHOLD,
        description="Standardised residual above which a reading is an anomaly (upward deviations only).",
    )
    day_threshold: float = Field(
        default=DAY_THRESHOLD,
        description="|Meter-day score| above which a meter-day is an anomaly (too high or too low).",
    )
    baseline_threshold: float = Field(
        default=baseline_model.THRESHOLD,
        description="Robust z-score above which the baseline flags a reading.",
    )


@dg.asset(
    deps=["validated_meter_readings", "meter_registry", "validated_weather_observations", "anomaly_model"],
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name="meters",
    kinds={"postgres", "scikitlearn", "pandas"},
    owners=OWNERS,
    description="Anomaly scores of the run's days from the current models: per reading in "
    "ops.anomaly_scores (the expected-consumption model's score and verdict, its expectation, and the "
    "baseline's score and verdict), per meter-day in ops.anomaly_meter_days (actual against expected, "
    "a score that finds days-long drifts either way). Before the first training, the first run trains "
    "the models on the 28 days up to its last day.",
    metadata={"table": "ops.anomaly_scores", "partitioned_by": "local day of the meter"},
    check_specs=[
        dg.AssetCheckSpec(
            "gx_anomaly_scores",
            asset="anomaly_scores",
            blocking=True,
            description="GX suite anomaly_scores on the run's scores before they are written: keys, score, "
            "verdict, expectation and model version not null, scores and expectations finite (within ±1e6), "
            "verdicts true or false, one score per meter and reading start. A failure writes nothing to "
            "ops.anomaly_scores, fails the run and stops the assets downstream (enrichment, marts).",
        )
    ],
    retry_policy=RETRY_POLICY,
)
@classified_step
def anomaly_scores(
    context: dg.AssetExecutionContext,
    config: AnomalyScoresConfig,
    postgres: PostgresResource,
    lake: LakeResource,
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    store = lake.get_lake()
    with postgres.connect() as conn:
        began = rebuilt.begin(conn)
        readings = read_readings(conn, first, last)
        models = load_current(store)
        if models is None and len(readings):
            trained = train(conn, store, last)
            models = trained[0] if trained else None
            context.log.warning("no anomaly model yet: trained one on the 28 days up to this run's last")
        scores = empty_scores()
        if models is not None and len(readings):
            prepared = features.prepare(
                readings, read_registry(conn), read_weather(conn, first, last), models.model.country
            )
            scores = score_run(
                prepared,
                models.model,
                models.baseline,
                reading_threshold=config.threshold,
                day_threshold=config.day_threshold,
                baseline_threshold=config.baseline_threshold,
            )
        suite = gx.validate("anomaly_scores", scores.readings)
        check = suite_check_result(suite, blocking_description="Guards the write to ops.anomaly_scores.")
        if not suite.success:
            raise dg.Failure(
                f"anomaly_scores suite failed; nothing written. {failure_summary(suite)}",
                metadata=check.metadata,
                allow_retries=False,
            )
        write_scores(conn, scores)
        rebuilt.stamp(conn, "anomaly_scores", first, last, began)
    context.log.info(
        f"scored {len(scores.readings)} readings of {first}..{last}: {_count(scores.readings['is_anomaly'])} "
        f"anomalies, {_count(scores.days['is_anomaly'])} anomalous meter-days"
    )
    return dg.MaterializeResult(metadata=_score_metadata(first, last, models, scores), check_results=[check])


def _count(flags: pd.Series) -> int:
    return int(flags.fillna(False).astype(bool).sum()) if len(flags) else 0


def _score_metadata(
    first: date, last: date, models: StoredModels | None, scores: RunScores
) -> dict[str, dg.MetadataValue]:
    """The run's figures, both models side by side, and the top readings and meter-days."""
    readings, days = scores.readings, scores.days
    model_flags = readings["is_anomaly"].fillna(False).astype(bool)
    base_flags = readings["baseline_is_anomaly"].fillna(False).astype(bool)
    either = int((model_flags | base_flags).sum())
    both = int((model_flags & base_flags).sum())
    comparison = pd.DataFrame(
        {
            "model": ["expected-consumption", "baseline (robust seasonal)"],
            "anomalous readings": [int(model_flags.sum()), int(base_flags.sum())],
            "anomalous meter-days": [_count(days["is_anomaly"]), int((days["baseline_anomalies"] > 0).sum())],
        }
    )
    top_days = (
        days.assign(abs_score=days["score"].astype("float64").abs()).nlargest(10, "abs_score")
        if len(days)
        else days
    )
    top = readings.assign(score=readings["score"].astype("float64")).nlargest(10, "score")
    return {
        "days": dg.MetadataValue.text(f"{first} .. {last}"),
        "model_version": dg.MetadataValue.text(models.version if models else "none (no meter readings)"),
        "baseline_version": dg.MetadataValue.text(models.baseline_version if models else "none"),
        "scored": dg.MetadataValue.int(len(readings)),
        "unscored_new_meters": dg.MetadataValue.int(scores.unscored),
        "anomalies": dg.MetadataValue.int(int(model_flags.sum())),
        "baseline_anomalies": dg.MetadataValue.int(int(base_flags.sum())),
        "anomaly_rate": figure(float(model_flags.sum()) / max(len(readings), 1)),
        "agreement": figure(both / either if either else 1.0),
        "meters": dg.MetadataValue.int(int(readings["meter_id"].nunique())),
        "meter_days": dg.MetadataValue.int(len(days)),
        "meter_day_anomalies": dg.MetadataValue.int(_count(days["is_anomaly"])),
        "models_side_by_side": dg.MetadataValue.md(markdown_table(comparison)),
        "top_meter_days": dg.MetadataValue.md(
            markdown_table(top_days[["meter_id", "local_date", "ratio", "score"]])
            if len(top_days)
            else "no readings"
        ),
        "top_scores": dg.MetadataValue.md(
            markdown_table(top[["meter_id", "reading_start", "score", "expected_kwh", "baseline_score"]])
            if len(top)
            else "no readings"
        ),
    }
