"""`meter_registry`: the head-end's reference file of meters, in `ops.meters`.

The file is optional: a deployment that lands only grid or weather data has none, and meters that
are not in it are still ingested and enriched (segment and region `unknown`, flagged).
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from metrify_assets.contracts import METER_REGISTRY_COLUMNS, METER_REGISTRY_FILE
from metrify_assets.errors import RETRY_POLICY, classified_step
from metrify_assets.resources import LandingResource, PostgresResource
from metrify_assets.teams import DATA_ENGINEERING, owner

OWNERS = [owner(DATA_ENGINEERING)]
REGISTRY_COLUMNS = list(METER_REGISTRY_COLUMNS)


def read_registry(path_text: str) -> pd.DataFrame:
    """The registry file's rows (the contract's columns, empty strings as nulls); a clear error if
    columns are missing."""
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
def meter_registry(landing: LandingResource, postgres: PostgresResource) -> dg.MaterializeResult:
    path = landing.path / METER_REGISTRY_FILE
    if not path.is_file():
        with postgres.connect() as conn:
            held = conn.execute("SELECT count(*) FROM ops.meters").fetchone()
        return dg.MaterializeResult(
            metadata={
                "meters_loaded": dg.MetadataValue.int(0),
                "meters_held": dg.MetadataValue.int(int(held[0]) if held else 0),
                "note": dg.MetadataValue.text(
                    f"No registry file at {path}: readings of meters not in ops.meters are enriched "
                    "with segment and region 'unknown' and flagged `unknown_meter`."
                ),
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
        }
    )
