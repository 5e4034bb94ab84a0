"""`grid_stability`: stability figures, system states, events and risk of each UTC day's grid samples.

Downstream of the validated grid samples; `marts.fct_grid_stability` and `marts.fct_grid_state_events`
read what it writes. Each run re-derives its days from `ops.grid_status`, so a late sample is taken in
when its day runs again, and a re-run changes nothing (docs/grid.md). A day without samples is
skipped: nothing is judged or written for it (what an earlier run stored stands), and the run's
metadata (`days_skipped`, `skipped`) and log say which days and why.
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg
import pandas as pd
import psycopg
from pydantic import Field

from metrify_assets.errors import RETRY_POLICY, classified_step
from metrify_assets.grid.analysis import GridConfig, joined
from metrify_assets.grid.area_history import area_changes, area_warnings
from metrify_assets.grid.areas import AREAS, DEFAULT_AREA
from metrify_assets.grid.charts import risk_chart_png
from metrify_assets.grid.stability import NOMINAL_VOLTAGE_V, VoltageConfig
from metrify_assets.grid.store import (
    CHUNK_DAYS,
    LOOKBACK,
    MAX_LOOKAHEAD_DAYS,
    GridRun,
    clear_days,
    run_chunks,
    sampled_days,
    stored_events,
)
from metrify_assets.metadata import markdown_table, png_markdown
from metrify_assets.partitions import DAYS, SINGLE_RUN, contiguous_ranges, partition_days
from metrify_assets.resources import GridResource, PostgresResource
from metrify_assets.storage import rebuilt
from metrify_assets.storage.days import hot_deleted_days
from metrify_assets.teams import GRID_OPERATIONS, owner

OWNERS = [owner(GRID_OPERATIONS)]
CHECK = "grid_stability_consistent"
EVENT_ROWS = 50  # events listed in the metadata; the rest are counted
CHART_DAYS = 31  # the risk chart shows the run's last days


class GridRunConfig(dg.Config):
    """Run-time knobs of the grid analysis; thresholds come from the synchronous area (grid/areas.py)."""

    area: str | None = Field(
        default=None,
        description=f"Synchronous area of the nodes not in node_areas: {', '.join(sorted(AREAS))}; "
        f"unset: the deployment's (the `grid` resource: METRIFY_GRID_AREA), else {DEFAULT_AREA}.",
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
    chunk_days: int = Field(
        default=CHUNK_DAYS,
        ge=1,
        description="Days analysed and committed at a time: a run's memory is that of a chunk's samples, "
        "whatever its range (docs/grid.md#runs-in-chunks).",
    )

    def grid_config(self, deployment_area: str | None = None) -> GridConfig:
        """The analysis' settings: this run's `area`, else the deployment's, else DEFAULT_AREA."""
        return GridConfig(
            default_area=self.area or deployment_area or DEFAULT_AREA,
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
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset="grid_stability",
            description="The figures written to ops.grid_stability and ops.grid_state_events are consistent: "
            "shares and risk scores in [0, 1], minutes not negative, alert and emergency minutes within the "
            "minutes covered, events ending after they start. A failure (counts per problem in its metadata) "
            "means a bug in the stability figures; they are written all the same and are suspect until it is fixed.",
        )
    ],
    retry_policy=RETRY_POLICY,
)
@classified_step
def grid_stability(
    context: dg.AssetExecutionContext, config: GridRunConfig, postgres: PostgresResource, grid: GridResource
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    cfg = config.grid_config(grid.area)
    lookback = pd.Timedelta(minutes=config.lookback_minutes).to_pytimedelta()
    totals = Totals()
    with postgres.connect() as conn:
        began = rebuilt.begin(conn)
        sampled = sampled_days(conn, first, last)
        skipped = skip_days(conn, first, last, sampled)
        analysed = [d for d in sampled if d not in skipped]
        if skipped:
            context.log.warning(
                f"{len(skipped)} of the {(last - first).days + 1} days of {first}..{last} skipped, nothing "
                "judged or written for them: "
                + "; ".join(f"{day}: {why}" for day, why in list(skipped.items())[:10])
            )
        changes = area_changes(conn, first, last, lambda node: cfg.area_of(node).name)
        area_from = "the run config" if config.area else grid.area_from
        for warning in area_warnings(changes, area_from):
            context.log.warning(warning)
        for a, b in contiguous_ranges(analysed):
            for run in run_chunks(conn, a, b, cfg, lookback, config.max_lookahead_days, config.chunk_days):
                totals.add(run)
                context.log.info(
                    f"grid stability {run.first}..{run.last} (days {(run.last - first).days + 1} of "
                    f"{(last - first).days + 1}): {len(run.figures)} node-hours, {len(run.events)} events"
                )
        listed, events_open = stored_events(conn, first, last, EVENT_ROWS)
        rebuilt.stamp(conn, "grid_stability", first, last, began)
    states = totals.states
    context.log.info(
        f"grid stability {first}..{last}: {len(totals.nodes)} nodes, {totals.node_hours} node-hours, "
        f"{totals.excluded} samples awaiting review left out as sensor faults, {totals.events} events ({events_open} open), {totals.carried} carried in, "
        f"{totals.closed} left open before a gap closed; "
        f"alerts raised for {totals.raised}, resolved for {totals.resolved}"
    )
    return dg.MaterializeResult(
        metadata={
            "days": dg.MetadataValue.text(f"{first} .. {last}"),
            "days_analysed": dg.MetadataValue.int(len(analysed)),
            "days_skipped": dg.MetadataValue.int(len(skipped)),
            "skipped": dg.MetadataValue.md(_skipped_table(skipped)),
            "area_changed": dg.MetadataValue.text(
                ", ".join(f"{s} -> {a} ({c.nodes} nodes)" for (s, a), c in sorted(changes.items())) or "no"
            ),
            "nodes": dg.MetadataValue.int(len(totals.nodes)),
            "samples": dg.MetadataValue.int(totals.samples),
            "excluded_samples": dg.MetadataValue.int(totals.excluded),
            "node_hours": dg.MetadataValue.int(totals.node_hours),
            **{
                f"hours_{s}": dg.MetadataValue.int(states.get(s, 0)) for s in ("normal", "alert", "emergency")
            },
            "events": dg.MetadataValue.int(totals.events),
            "events_open": dg.MetadataValue.int(events_open),
            "events_carried_in": dg.MetadataValue.int(totals.carried),
            "events_closed_at_gap": dg.MetadataValue.int(totals.closed),
            "lookahead_days": dg.MetadataValue.int(totals.lookahead_days),
            "alerts_raised": dg.MetadataValue.json(totals.raised),
            "alerts_resolved": dg.MetadataValue.json(totals.resolved),
            "events_table": dg.MetadataValue.md(_events_table(listed, totals.events)),
            "riskiest_hours": dg.MetadataValue.md(_risk_table(totals.riskiest)),
            "risk_chart": dg.MetadataValue.md(
                png_markdown(risk_chart_png(totals.recent), f"risk per hour, the last {CHART_DAYS} days")
                if len(totals.recent)
                else "no samples"
            ),
        },
        check_results=[_check(totals.problems)],
    )


@dataclass
class Totals:
    """The metadata of a run from its chunks: sums, the riskiest hours and the last `CHART_DAYS` days
    of risk, so what the run keeps does not grow with its range."""

    nodes: set[str] = field(default_factory=set)
    samples: int = 0
    excluded: int = 0  # samples awaiting review left out as sensor faults (analysis.excluded)
    node_hours: int = 0
    states: dict[str, int] = field(default_factory=dict)
    events: int = 0
    carried: int = 0
    closed: int = 0
    lookahead_days: int = 0
    raised: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    riskiest: pd.DataFrame = field(default_factory=pd.DataFrame)
    recent: pd.DataFrame = field(default_factory=pd.DataFrame)
    problems: dict[str, int] = field(default_factory=dict)

    def add(self, run: GridRun) -> None:
        f, e = run.figures, run.events
        self.nodes.update(str(n) for n in f["grid_node_id"].unique())
        self.samples += int(f["sample_count"].sum()) if len(f) else 0
        self.excluded += int(f["excluded_samples"].sum()) if len(f) else 0
        self.node_hours += len(f)
        for state, hours in f["worst_state"].value_counts().items() if len(f) else []:
            self.states[str(state)] = self.states.get(str(state), 0) + int(hours)
        self.events += len(e)
        self.carried += run.carried
        self.closed += run.closed
        self.lookahead_days, self.raised, self.resolved = run.lookahead_days, run.raised, run.resolved
        if len(f):
            # Ties by time, then node: the same in any chunks.
            top = joined((self.riskiest, f), f).sort_values(
                ["risk_score", "hour_start", "grid_node_id"],
                ascending=[False, True, True],
                na_position="last",
            )
            self.riskiest = top.head(10)
            since = pd.Timestamp(run.last, tz="UTC") - pd.Timedelta(days=CHART_DAYS - 1)
            chart = f[["grid_node_id", "hour_start", "risk_score", "worst_state"]]
            recent = joined((self.recent, chart), chart)
            self.recent = recent[(pd.to_datetime(recent["hour_start"], utc=True) >= since).to_numpy()]
        for name, count in _problems(run).items():
            self.problems[name] = self.problems.get(name, 0) + count


def skip_days(conn: psycopg.Connection, first: date, last: date, sampled: list[date]) -> dict[date, str]:
    """The days of `first`..`last` the run skips, with why: a day without a sample has nothing to judge
    the grid by, so a run writes nothing for it. A day whose samples left PostgreSQL (lifecycle) keeps
    what an earlier run stored, as VEE keeps such a day's series (late samples of it too are left to
    a restore); any other day without samples loses the hours and events an earlier run stored from
    samples that are no longer there (a rollback took them out)."""
    gone = set(hot_deleted_days(conn, "grid_status", first, last))
    have = set(sampled)
    skipped = {}
    empty = [d for d in _days(first, last) if d not in have and d not in gone]
    for a, b in contiguous_ranges(empty):
        removed = clear_days(conn, a, b)
        cleared = f"; {removed} hours an earlier run stored for {a}..{b} removed" if removed else ""
        for day in _days(a, b):
            skipped[day] = f"no samples in ops.grid_status{cleared}"
    for day in gone:  # late samples of such a day alone would replace its figures: restore it first
        skipped[day] = (
            "its samples left PostgreSQL (lifecycle): what was stored stands; restore them to rebuild it"
        )
    return dict(sorted(skipped.items()))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _skipped_table(skipped: dict[date, str], limit: int = 31) -> str:
    if not skipped:
        return "none: every day had samples"
    frame = pd.DataFrame([(str(d), why) for d, why in list(skipped.items())[:limit]], columns=["day", "why"])
    more = len(skipped) - limit
    return markdown_table(frame) + (f"\n\nand {more} more days skipped" if more > 0 else "")


def _events_table(events: pd.DataFrame, total: int) -> str:
    if events.empty:
        return "no alert or emergency started in these days"
    shown = events.assign(peak_mhz=(1000 * events["peak_deviation_hz"].astype(float)).round(1))
    table = markdown_table(shown[["grid_node_id", "state", "rule", "started_at", "ended_at", "peak_mhz"]])
    more = total - len(events)
    return table + (f"\n\nand {more} more in ops.grid_state_events" if more > 0 else "")


def _risk_table(top: pd.DataFrame) -> str:
    if top.empty:
        return "no samples"
    columns = ["grid_node_id", "hour_start", "risk_score", "risk_components", "worst_state"]
    return markdown_table(top[columns].round({"risk_score": 3}))


def _problems(run: GridRun) -> dict[str, int]:
    """A chunk's figures out of their ranges and events ending before they start."""
    f, e = run.figures, run.events
    return {
        "shares_outside_0_1": int(
            (~f["share_outside_standard"].dropna().astype(float).between(0, 1)).sum()
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


def _check(problems: dict[str, int]) -> dg.AssetCheckResult:
    """Figures within their ranges, events well ordered: what the tables' readers rely on."""
    return dg.AssetCheckResult(
        check_name=CHECK,
        passed=not any(problems.values()),
        metadata={k: dg.MetadataValue.int(v) for k, v in problems.items()},
        description="Shares and scores in [0, 1], minutes not negative and state minutes within the time "
        "covered, events ending after they start.",
    )
