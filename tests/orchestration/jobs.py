"""A small `refresh_job` and `daily_job` over day partitions, and a `weekly_job` of two parts, for what
the CLI does with runs (their alerts, running failed days again) without building the whole graph:
`refresh_job` and the weekly model fail while a switch file exists, as a bug would until its fix is
deployed."""

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


@dg.asset
def weekly_model(switch: Switch) -> None:
    """The part of `weekly_job` `metrify run` selects (the training)."""
    if Path(switch.path).exists():
        raise ValueError("weekly_model has no readings to train on")


@dg.asset
def weekly_cleanup() -> None:
    """The other part of `weekly_job` (the lifecycle), which works."""


def cli_defs(postgres: PostgresResource, switch: Path) -> dg.Definitions:
    """The three jobs, with the `postgres` the CLI's runs record their alerts in."""
    return dg.Definitions(
        assets=[day_figures, day_report, weekly_model, weekly_cleanup],
        jobs=[
            dg.define_asset_job("refresh_job", selection=[day_figures]),
            dg.define_asset_job("daily_job", selection=[day_report]),
            dg.define_asset_job("weekly_job", selection=[weekly_model, weekly_cleanup]),
        ],
        resources={"postgres": postgres, "switch": Switch(path=str(switch))},
        executor=dg.in_process_executor,
    )
