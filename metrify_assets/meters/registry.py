"""`meter_registry`: the head-end's reference file of meters, in `ops.meters`.

The file is optional: a deployment that lands only grid or weather data has none, and meters that
are not in it are still ingested and enriched (segment and region `unknown`, flagged).

A changed file is loaded before readings are ingested: `metrify run` loads it first, and with a
daemon `meter_registry_sensor` runs `meter_registry_job` within a minute. Ingestion places each
reading on its meter's local day from `ops.meters`, so readings ingested before their meters' time
zones are loaded would be placed on UTC days (a first `metrify run` built a UTC day of them).

The hourly `refresh_job` and the weekly job select `meter_registry` too; a file the asset has loaded
already (the same `file_version`) is not read or written again, so an hour without a new export
costs a look at the file and at the latest materialisation, and a count.
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from metrify_assets.contracts import METER_REGISTRY_COLUMNS, METER_REGISTRY_FILE
from metrify_assets.errors import RETRY_POLICY, classified_step
from metrify_assets.resources import LandingResource, PostgresResource
from metrify_assets.teams import DATA_ENGINEERING, owner

if TYPE_CHECKING:
    import pandas as pd

OWNERS = [owner(DATA_ENGINEERING)]
REGISTRY_COLUMNS = list(METER_REGISTRY_COLUMNS)
REGISTRY_KEY = dg.AssetKey("meter_registry")
FILE_VERSION = "file_version"  # the materialisation's metadata entry: which file it loaded


def file_version(landing_dir: Path) -> str | None:
    """The registry file's modification time and size (what an edit or a new export changes), or None
    without a file."""
    try:
        stat = (landing_dir / METER_REGISTRY_FILE).stat()
    except FileNotFoundError:
        return None
    return f"{stat.st_mtime_ns}-{stat.st_size}"


def unloaded_version(landing_dir: Path, instance: dg.DagsterInstance) -> str | None:
    """The registry file's version when `meter_registry` has not loaded it yet, else None."""
    version = file_version(landing_dir)
    if version is None:
        return None
    event = instance.get_latest_materialization_event(REGISTRY_KEY)
    loaded = event.asset_materialization if event else None
    entry = loaded.metadata.get(FILE_VERSION) if loaded else None
    return None if entry is not None and entry.value == version else version


def read_registry(path_text: str) -> "pd.DataFrame":
    """The registry file's rows (the contract's columns, empty strings as nulls); a clear error if
    columns are missing."""
    import pandas as pd  # not for `metrify status`, which imports `unloaded_version` through catchup

    meters = pd.read_csv(path_text, dtype=str)
    missing = set(REGISTRY_COLUMNS) - set(meters.columns)
    if missing:
        raise dg.Failure(f"{path_text} lacks columns: {', '.join(sorted(missing))}", allow_retries=False)
    rows = meters[REGISTRY_COLUMNS]
    return rows.astype(object).where(rows.notna(), None)


@dg.asset(
    group_name="meters",
    kinds={"postgres", "csv"},
    owners=OWNERS,
    description="Meter registry (segment, region, weather station, grid node, tariff, timezone) in ops.meters, "
    f"loaded from the head-end's reference file `<landing>/{METER_REGISTRY_FILE}` when there is one.",
    metadata={"table": "ops.meters", "source_file": METER_REGISTRY_FILE},
    retry_policy=RETRY_POLICY,
)
@classified_step
def meter_registry(
    context: dg.AssetExecutionContext, landing: LandingResource, postgres: PostgresResource
) -> dg.MaterializeResult:
    path = landing.path / METER_REGISTRY_FILE
    version = file_version(landing.path)
    if version is None or unloaded_version(landing.path, context.instance) is None:
        with postgres.connect() as conn:
            row = conn.execute("SELECT count(*) FROM ops.meters").fetchone()
        held = int(row[0]) if row else 0
        if version is None:
            return dg.MaterializeResult(
                metadata={
                    "meters_loaded": dg.MetadataValue.int(0),
                    "meters_held": dg.MetadataValue.int(held),
                    "note": dg.MetadataValue.text(
                        f"No registry file at {path}: readings of meters not in ops.meters are enriched "
                        "with segment and region 'unknown' and flagged `unknown_meter`."
                    ),
                }
            )
        if held:  # an emptied table (a database reset under the same Dagster instance) loads again
            return dg.MaterializeResult(
                metadata={
                    "meters_loaded": dg.MetadataValue.int(0),
                    "meters_held": dg.MetadataValue.int(held),
                    "note": dg.MetadataValue.text(f"unchanged, version {version}: {path} loaded already"),
                    "source_file": dg.MetadataValue.path(str(path)),
                    FILE_VERSION: dg.MetadataValue.text(version),
                }
            )
    rows = read_registry(str(path))
    cols = ", ".join(REGISTRY_COLUMNS)
    sets = ", ".join(f"{c} = excluded.{c}" for c in REGISTRY_COLUMNS[1:])
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO ops.meters ({cols}) VALUES ({', '.join(['%s'] * len(REGISTRY_COLUMNS))}) "
            f"ON CONFLICT (meter_id) DO UPDATE SET {sets}, updated_at = now()",
            list(rows.itertuples(index=False, name=None)),
        )
    return dg.MaterializeResult(
        metadata={
            "meters_loaded": dg.MetadataValue.int(len(rows)),
            "by_segment": dg.MetadataValue.json(
                {str(k): int(v) for k, v in rows["segment"].value_counts().items()}
            ),
            "source_file": dg.MetadataValue.path(str(path)),
            FILE_VERSION: dg.MetadataValue.text(version),
        }
    )


registry_job = dg.define_asset_job(
    "meter_registry_job",
    selection=dg.AssetSelection.assets(REGISTRY_KEY),
    description="Load the meter registry file into ops.meters (run by `meter_registry_sensor` when the file "
    "changes, and by `metrify run` before it ingests).",
)


@dg.sensor(
    job=registry_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Loads `<landing>/{METER_REGISTRY_FILE}` when it changes, so readings are placed on their "
    "meters' local days from the first batch after it (on by default: it acts on a changed file only).",
)
def meter_registry_sensor(
    context: dg.SensorEvaluationContext, landing: LandingResource
) -> dg.RunRequest | dg.SkipReason:
    version = unloaded_version(landing.path, context.instance)
    if version is None:
        return dg.SkipReason(f"{landing.path / METER_REGISTRY_FILE}: loaded already, or no such file")
    return dg.RunRequest(run_key=f"meter_registry-{version}")
