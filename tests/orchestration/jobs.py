"""A small `refresh_job` and `daily_job` over day partitions, for what the CLI does with runs (their
alerts, running failed days again) without building the whole graph: `refresh_job` fails while a
switch file exists, as a bug would until its fix is deployed."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from metrify_assets.partitions import DAYS, SINGLE_RUN
from metrify_assets.resources import PostgresResource


class Switch(dg.ConfigurableResource):
    """A file whose presence breaks `day_figures`."""

    path: str


@dg.asset(partitions_def=DAYS, backfill_policy=SINGLE_RUN)
def day_figures(switch: Switch) -> None:
    if Path(switch.path).exists():
        raise ValueError("day_figures cannot divide by zero")


@dg.asset(partitions_def=DAYS, backfill_policy=SINGLE_RUN)
def day_report() -> None:
    """`daily_job`'s asset, which works."""


def cli_defs(postgres: PostgresResource, switch: Path) -> dg.Definitions:
    """The two jobs, with the `postgres` the CLI's runs record their alerts in."""
    return dg.Definitions(
        assets=[day_figures, day_report],
        jobs=[
            dg.define_asset_job("refresh_job", selection=[day_figures]),
            dg.define_asset_job("daily_job", selection=[day_report]),
        ],
        resources={"postgres": postgres, "switch": Switch(path=str(switch))},
        executor=dg.in_process_executor,
    )
