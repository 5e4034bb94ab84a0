"""`grid_stability`: stability figures, system states, events and risk of each UTC day's grid samples.

Downstream of the validated grid samples; `marts.fct_grid_stability` and `marts.fct_grid_state_events`
read what it writes. Each run re-derives its days from `ops.grid_status`, so a late sample is taken in
when its day runs again, and a re-run changes nothing (docs/grid.md).
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

import dagster as dg
import pandas as pd
from pydantic import Field

from metrify_assets.errors import RETRY_POLICY, classified_step
from metrify_assets.grid.analysis import GridConfig
from metrify_assets.grid.areas import AREAS, DEFAULT_AREA
from metrify_assets.grid.charts import risk_chart_png
from metrify_assets.grid.stability import NOMINAL_VOLTAGE_V, VoltageConfig
from metrify_assets.grid.store import LOOKBACK, MAX_LOOKAHEAD_DAYS, GridRun, run_days
from metrify_assets.metadata import markdown_table, png_markdown
from metrify_assets.partitions import DAYS, SINGLE_RUN, partition_days
from metrify_assets.resources import PostgresResource

OWNERS = ["team:grid-operations"]
CHECK = "grid_stability_consistent"


class GridRunConfig(dg.Config):
    """Run-time knobs of the grid analysis; thresholds come from the synchronous area (grid/areas.py)."""

    area: str = Field(
        default=DEFAULT_AREA,
        description=f"Synchronous area of the nodes not in node_areas: {', '.join(sorted(AREAS))}.",
    )
    node_areas: dict[str, str] = Field(
        default_factory=dict, description="Synchronous area per grid node, where it is not `area`."
    )
    nominal_voltage_v: float = Field(
        default=NOMINAL_VOLTAGE_V, description="Nominal voltage the EN 50160 figures are taken against."
    )
    lookback_minutes: int = Field(
        default=int(LOOKBACK.total_seconds() // 60),
        description="Minutes read before the first day, so states carry across midnight (at least the "
        "area's time to restore frequency plus a minute).",
    )
    max_lookahead_days: int = Field(
        default=MAX_LOOKAHEAD_DAYS,
        description="Days read past the last day to find the end of an open event.",
    )

    def grid_config(self) -> GridConfig:
        return GridConfig(
            default_area=self.area,
            node_areas=dict(self.node_areas),
            voltage=VoltageConfig(nominal_v=self.nominal_voltage_v),
        )


@dg.asset(
    deps=["validated_grid_status"],
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name="grid",
    kinds={"python", "postgres"},
    owners=OWNERS,
    description="Grid stability per node and UTC hour (frequency deviation, time outside the standard "
    "range, RoCoF, EN 50160 voltage, load margin, worst system state, risk score) in ops.grid_stability; "
    "ENTSO-E system-state events (alert / emergency, with the rule that fired) in ops.grid_state_events; "
    "the newest state of each node as a grid_state alert.",
    metadata={"tables": "ops.grid_stability, ops.grid_state_events", "partitioned_by": "UTC day"},
    check_specs=[dg.AssetCheckSpec(CHECK, asset="grid_stability")],
    retry_policy=RETRY_POLICY,
)
@classified_step
def grid_stability(
    context: dg.AssetExecutionContext, config: GridRunConfig, postgres: PostgresResource
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    cfg = config.grid_config()
    lookback = pd.Timedelta(minutes=config.lookback_minutes).to_pytimedelta()
    with postgres.connect() as conn:
        run = run_days(conn, first, last, cfg, lookback, config.max_lookahead_days)
    figures, events = run.figures, run.events
    states = figures["worst_state"].value_counts() if len(figures) else pd.Series(dtype=int)
    open_events = int(events["ended_at"].isna().sum()) if len(events) else 0
    context.log.info(
        f"grid stability {first}..{last}: {figures['grid_node_id'].nunique() if len(figures) else 0} nodes, "
        f"{len(figures)} node-hours, {len(events)} events ({open_events} open), {run.carried} carried in, "
        f"{run.closed} left open before a gap closed; "
        f"alerts raised for {run.raised}, resolved for {run.resolved}"
    )
    return dg.MaterializeResult(
        metadata={
            "days": dg.MetadataValue.text(f"{first} .. {last}"),
            "nodes": dg.MetadataValue.int(int(figures["grid_node_id"].nunique()) if len(figures) else 0),
            "samples": dg.MetadataValue.int(int(figures["sample_count"].sum()) if len(figures) else 0),
            "node_hours": dg.MetadataValue.int(len(figures)),
            **{
                f"hours_{s}": dg.MetadataValue.int(int(states.get(s, 0)))
                for s in ("normal", "alert", "emergency")
            },
            "events": dg.MetadataValue.int(len(events)),
            "events_open": dg.MetadataValue.int(open_events),
            "events_carried_in": dg.MetadataValue.int(run.carried),
            "events_closed_at_gap": dg.MetadataValue.int(run.closed),
            "lookahead_days": dg.MetadataValue.int(run.lookahead_days),
            "alerts_raised": dg.MetadataValue.json(run.raised),
            "alerts_resolved": dg.MetadataValue.json(run.resolved),
            "events_table": dg.MetadataValue.md(_events_table(events)),
            "riskiest_hours": dg.MetadataValue.md(_risk_table(figures)),
            "risk_chart": dg.MetadataValue.md(
                png_markdown(risk_chart_png(figures), "risk per hour") if len(figures) else "no samples"
            ),
        },
        check_results=[_check(run)],
    )


def _events_table(events: pd.DataFrame) -> str:
    if events.empty:
        return "no alert or emergency started in these days"
    shown = events.assign(peak_mhz=(1000 * events["peak_deviation_hz"].astype(float)).round(1))
    return markdown_table(shown[["grid_node_id", "state", "rule", "started_at", "ended_at", "peak_mhz"]])


def _risk_table(figures: pd.DataFrame) -> str:
    if figures.empty:
        return "no samples"
    top = figures.sort_values("risk_score", ascending=False, na_position="last").head(10)
    columns = ["grid_node_id", "hour_start", "risk_score", "risk_components", "worst_state"]
    return markdown_table(top[columns].round({"risk_score": 3}))


def _check(run: GridRun) -> dg.AssetCheckResult:
    """Figures within their ranges, events well ordered: what the tables' readers rely on."""
    f, e = run.figures, run.events
    problems = {
        "shares_outside_0_1": int(
            (~f["share_outside_standard"].astype(float).between(0, 1)).sum()
            + (~f["risk_score"].dropna().astype(float).between(0, 1)).sum()
        )
        if len(f)
        else 0,
        "negative_minutes": int(
            (f[["covered_minutes", "alert_minutes", "emergency_minutes"]] < 0).to_numpy().sum()
        )
        if len(f)
        else 0,
        "state_minutes_over_covered": int(
            (f["alert_minutes"] + f["emergency_minutes"] > f["covered_minutes"] + 1e-9).sum()
        )
        if len(f)
        else 0,
        "events_ending_before_start": int((e["ended_at"].notna() & (e["ended_at"] <= e["started_at"])).sum())
        if len(e)
        else 0,
    }
    return dg.AssetCheckResult(
        check_name=CHECK,
        passed=not any(problems.values()),
        metadata={k: dg.MetadataValue.int(v) for k, v in problems.items()},
        description="Shares and scores in [0, 1], minutes not negative and state minutes within the time "
        "covered, events ending after they start.",
    )
