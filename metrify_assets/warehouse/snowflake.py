"""The Snowflake side of the warehouse: the `warehouse_load` asset (its resource: resources/build.py).

With METRIFY_DBT_TARGET=snowflake, dbt reads its sources from Snowflake's RAW schema, which this
asset fills from the operational PostgreSQL tables before dbt builds the marts there.
"""

import dagster as dg
import pandas as pd
import psycopg

from metrify_assets.metadata import markdown_table
from metrify_assets.resources import PostgresResource, SnowflakeResource
from metrify_assets.teams import DATA_PLATFORM, owner
from metrify_assets.warehouse.raw_copy import RAW_SCHEMA, RAW_TABLES, copy_all

WAREHOUSE_LOAD_KEY = dg.AssetKey("warehouse_load")

# The Dagster assets that write the `ops` tables the load copies (the dbt sources' asset keys).
OPS_WRITERS = (
    "meter_registry",
    "validated_meter_readings",
    "validated_grid_status",
    "validated_weather_observations",
    "anomaly_scores",
    "enriched_meter_readings",
    "vee_meter_readings",
    "grid_stability",
)


@dg.asset(
    key=WAREHOUSE_LOAD_KEY,
    deps=list(OPS_WRITERS),
    group_name="warehouse",
    owners=[owner(DATA_PLATFORM)],
    kinds={"postgres", "snowflake"},
    description=f"The operational tables copied into Snowflake's {RAW_SCHEMA} schema (delete+insert by "
    "key of the rows changed since the last copy), where dbt's sources read them on the snowflake target.",
    metadata={"tables": [table.name for table in RAW_TABLES]},
)
def warehouse_load(postgres: PostgresResource, snowflake: SnowflakeResource) -> dg.MaterializeResult:
    with postgres.connect() as pg, snowflake.get_connection() as sf:
        # One snapshot for every read of the copy: a table copied by groups (grid_excluded_samples, by
        # grid_stability's node-days) deletes the groups a second read finds, and a write between that
        # read and its rows' would delete a node-day whose new rows were not copied.
        pg.commit()  # the migration check's transaction, if any: the level is set between transactions
        pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        copied = copy_all(pg, sf)
    return dg.MaterializeResult(
        metadata={
            "rows_copied": sum(copied.values()),
            "per_table": dg.MetadataValue.md(
                markdown_table(pd.DataFrame({"table": list(copied), "rows copied": list(copied.values())}))
            ),
        }
    )
