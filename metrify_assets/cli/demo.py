"""Simulate data, ingest it, materialise the graph for its days, and print a summary of what the batches
became.

`metrify demo`: `metrify simulate` then `metrify run`, and a summary of what the demo's batches became.
The simulated network is Great Britain's (meters in its regions, Europe/London), so the demo's runs
judge its grid nodes by GB's frequency standards (METRIFY_GRID_AREA=great_britain for their duration,
whatever the environment says), and its home remembers that area for later commands
(`remember_grid_area`): under Continental Europe's +/-50 mHz range its frequency would read as five
times as disturbed as it is.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from metrify_assets.cli.console import command_console, counted
from metrify_assets.cli.db import note_embedded_server
from metrify_assets.cli.run import process_age, run_with_progress
from metrify_assets.env import HOME_SETTINGS_FILE, Settings, home_settings, remember, resolve_settings
from metrify_assets.ingestion.dead_letters import Selection, reason_counts
from metrify_assets.resources.lake import Lake
from metrify_assets.warehouse.connection import environment

if TYPE_CHECKING:
    from metrify_assets.simulation import SimulationConfig


@dataclass
class DemoSummary:
    input_records: int
    accepted: int
    quarantined: int
    flagged: int
    anomalies: int
    quality_score: float | None
    marts: dict[str, int]
    report_path: str
    batches: int
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    vee_intervals: dict[str, int] = field(default_factory=dict)  # billing-grade intervals by status
    vee_methods: dict[str, int] = field(default_factory=dict)  # estimated and edited intervals by method
    vee_audit_rows: int = 0
    billing_ready_days: int = 0
    meter_days: int = 0
    grid_area: str = ""  # the synchronous area the grid nodes were judged by
    grid_node_hours: dict[str, int] = field(default_factory=dict)  # node-hours by worst system state
    grid_state_events: dict[str, int] = field(default_factory=dict)  # alert / emergency events
    alerts: dict[str, int] = field(default_factory=dict)  # "kind severity status" -> alerts
    # The newest forecast day: its date, the series forecast, the chosen methods and the P10/P50/P90
    # totals in kWh (numbers: the table formats them; P10/P90 null when the chosen methods gave point
    # forecasts only).
    forecast: dict[str, Any] = field(default_factory=dict)
    lifecycle_days: dict[str, int] = field(default_factory=dict)  # "dataset tier" -> days in the lake
    lifecycle_preview: dict[str, int] = field(
        default_factory=dict
    )  # dry run a year on: "dataset action" -> days
    seconds: float = 0.0  # from the command's start (the process's), its imports included


def summarise(conn: psycopg.Connection, batch_ids: list[str], report_path: str) -> DemoSummary:
    """Counts of this demo's batches (from the ledger) and of what the graph built from them."""
    from metrify_assets.forecasting.backtest import stored

    row = conn.execute(
        "SELECT count(*), coalesce(sum(records_in), 0), coalesce(sum(accepted), 0), "
        "coalesce(sum(quarantined), 0), coalesce(sum(flagged), 0), "
        "sum(quality_score * records_in) / nullif(sum(records_in) FILTER (WHERE quality_score IS NOT NULL), 0) "
        "FROM ops.ingest_ledger WHERE batch_id = ANY(%s)",
        (batch_ids,),
    ).fetchone()
    assert row is not None
    # Reason codes as the report, the marts and `metrify dlq list` count them, over every source.
    reasons: Counter[str] = Counter()
    for _, code, records in reason_counts(conn, Selection(batch_ids=tuple(batch_ids), include_resolved=True)):
        reasons[code] += records
    anomalies = conn.execute("SELECT count(*) FROM ops.anomaly_scores WHERE is_anomaly").fetchone()
    vee: dict[str, int] = dict(
        conn.execute("SELECT status, count(*) FROM ops.vee_readings GROUP BY 1 ORDER BY 1").fetchall()
    )
    methods: dict[str, int] = dict(
        conn.execute(
            "SELECT method, count(*) FROM ops.vee_readings WHERE status IN ('estimated', 'edited') "
            "GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
    )
    days = conn.execute("SELECT count(*), count(*) FILTER (WHERE billing_ready) FROM ops.vee_days").fetchone()
    audit = conn.execute("SELECT count(*) FROM ops.vee_audit").fetchone()
    grid_hours = conn.execute(
        "SELECT worst_state, count(*) FROM ops.grid_stability GROUP BY 1 "
        "ORDER BY array_position(ARRAY['normal', 'alert', 'emergency'], worst_state)"
    ).fetchall()
    grid_events = conn.execute(
        "SELECT state, count(*) FROM ops.grid_state_events GROUP BY 1 ORDER BY 1"
    ).fetchall()
    alerts = conn.execute(
        "SELECT kind || ' ' || severity || ' ' || CASE WHEN resolved_at IS NULL THEN 'open' ELSE 'resolved' END, "
        "count(*) FROM ops.alerts GROUP BY 1 ORDER BY 1"
    ).fetchall()
    forecast = conn.execute(
        # P10 / P90 totals only where every chosen row has its interval: a sum over some would be no band
        "SELECT local_date, count(DISTINCT (region, segment)), "
        "CASE WHEN count(p10_kwh) = count(p50_kwh) THEN sum(p10_kwh) END, sum(p50_kwh), "
        "CASE WHEN count(p90_kwh) = count(p50_kwh) THEN sum(p90_kwh) END, "
        "array_agg(DISTINCT method ORDER BY method) FROM ops.load_forecasts "
        "WHERE selected AND local_date = (SELECT max(local_date) FROM ops.load_forecasts) GROUP BY 1"
    ).fetchone()
    # Per series of that day chosen by default: its days of load, as `metrify forecast show` says them.
    defaulted: list[int] = []
    if forecast:
        series = conn.execute(
            "SELECT DISTINCT region, segment FROM ops.load_forecasts WHERE local_date = %s", (forecast[0],)
        ).fetchall()
        defaulted = [n for _, n in stored(conn, forecast[0], series) if n is not None]
    marts = {
        name: int(conn.execute(f'SELECT count(*) FROM marts."{name}"').fetchone()[0])  # type: ignore[index]
        for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' ORDER BY 1"
        ).fetchall()
    }
    return DemoSummary(
        batches=int(row[0]),
        input_records=int(row[1]),
        accepted=int(row[2]),
        quarantined=int(row[3]),
        flagged=int(row[4]),
        quality_score=round(float(row[5]), 2) if row[5] is not None else None,
        anomalies=int(anomalies[0]) if anomalies else 0,
        marts=marts,
        report_path=report_path,
        quarantine_reasons=dict(reasons.most_common()),
        vee_intervals={str(k): int(v) for k, v in vee.items()},
        vee_methods={str(k): int(v) for k, v in methods.items()},
        vee_audit_rows=int(audit[0]) if audit else 0,
        meter_days=int(days[0]) if days else 0,
        billing_ready_days=int(days[1]) if days else 0,
        grid_node_hours={str(k): int(v) for k, v in grid_hours},
        grid_state_events={str(k): int(v) for k, v in grid_events},
        alerts={str(k): int(v) for k, v in alerts},
        forecast=_forecast_summary(forecast, defaulted),
    )


def _forecast_summary(row: tuple[Any, ...] | None, defaulted: list[int]) -> dict[str, Any]:
    """`defaulted`: the days of load of each series chosen by default."""
    if row is None:
        return {}
    day, series, p10, p50, p90, methods = row
    return {
        "day": day.isoformat(),
        "series": int(series),
        "methods": list(methods),
        "by_default": len(defaulted),  # series whose backtest could not compare methods yet
        "history_days": max(defaulted, default=0),  # the most days of load a series chosen by default had
        "p10_kwh": None if p10 is None else round(float(p10), 3),
        "p50_kwh": round(float(p50), 3),
        "p90_kwh": None if p90 is None else round(float(p90), 3),
    }


PREVIEW_DAYS = 400


def demo_lifecycle(
    settings: Settings, conn: psycopg.Connection, config: SimulationConfig
) -> tuple[dict[str, int], dict[str, int]]:
    """The weekly job's lifecycle on the demo's clock (the day after its data: nothing is due yet), then
    a dry run `PREVIEW_DAYS` later that lists what would move and go. Days by tier, and the preview."""
    from metrify_assets.definitions import defs as load_defs  # the code location: loaded only when needed
    from metrify_assets.orchestration.instance import local_instance
    from metrify_assets.orchestration.weekly import run_lifecycle

    defs, instance = load_defs(), local_instance(settings)
    today = config.start + timedelta(days=config.days)
    run_lifecycle(defs, instance, conn, today, trigger="demo")
    preview = run_lifecycle(
        defs, instance, conn, today + timedelta(days=PREVIEW_DAYS), dry_run=True, trigger="demo"
    )
    tiers = {
        f"{dataset} {tier}": int(n)
        for dataset, tier, n in conn.execute(
            "SELECT dataset, tier, count(*) FROM ops.lifecycle_days GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    }
    planned = {
        f"{dataset} {action}": int(n)
        for dataset, action, n in conn.execute(
            "SELECT dataset, action, count(DISTINCT day) FROM ops.lifecycle_log WHERE run_id = %s AND dry_run AND day IS NOT NULL "
            "GROUP BY 1, 2 ORDER BY 1, 2",
            (preview.run_id,),
        ).fetchall()
    }
    return tiers, planned


def _print_summary(console: Console, summary: DemoSummary) -> None:
    from metrify_assets.forecasting.backtest import COMPARE_DAYS

    table = Table(title="Metrify demo", show_header=False)
    table.add_row("batches", f"{summary.batches}")
    table.add_row("input records", f"{summary.input_records:,}")
    table.add_row("accepted", f"{summary.accepted:,} (of which flagged for review: {summary.flagged:,})")
    table.add_row("quarantined", f"{summary.quarantined:,}")
    table.add_row("reconciles", str(summary.input_records == summary.accepted + summary.quarantined))
    table.add_row("anomalies", f"{summary.anomalies:,}")
    table.add_row("quality score", f"{summary.quality_score}")
    for reason, n in summary.quarantine_reasons.items():
        table.add_row(f"  quarantined: {reason}", f"{n:,}")
    for status, n in summary.vee_intervals.items():
        table.add_row(f"  VEE intervals: {status}", f"{n:,}")
    if summary.vee_methods:
        methods = "\n".join(f"{n:,} {method}" for method, n in summary.vee_methods.items())
        table.add_row("  VEE estimated/edited by", methods)
    table.add_row("VEE audit rows", f"{summary.vee_audit_rows:,}")
    table.add_row("billing-ready meter-days", f"{summary.billing_ready_days:,} of {summary.meter_days:,}")
    hours = ", ".join(f"{n:,} {state}" for state, n in summary.grid_node_hours.items()) or "none"
    table.add_row(f"grid node-hours by state ({summary.grid_area} standards)", hours)
    events = ", ".join(f"{n:,} {state}" for state, n in summary.grid_state_events.items()) or "none"
    table.add_row("grid state events", events)
    alerts = "\n".join(f"{n:,} {key}" for key, n in summary.alerts.items()) or "none"
    table.add_row("alerts", alerts)
    for mart, n in summary.marts.items():
        table.add_row(f"  marts.{mart}", f"{n:,} rows")
    if summary.forecast:
        f = summary.forecast
        band = (
            "point forecast, no interval"
            if f["p10_kwh"] is None
            else f"P10 {f['p10_kwh']:,.0f} .. P90 {f['p90_kwh']:,.0f}"
        )
        kwh = f"{f['p50_kwh']:,.0f} ({band})"
        chosen = f"chosen methods: {', '.join(f['methods'])}"
        if f["by_default"]:
            chosen += (
                f"\nby default in {f['by_default']} of {f['series']} series: no backtest to choose by yet "
                f"({counted(f['history_days'], 'day')} of history, {COMPARE_DAYS} needed)"
            )
        table.add_row(
            f"load forecast for {f['day']}", f"{f['series']} region x segment series, {kwh} kWh\n{chosen}"
        )
    else:
        table.add_row("load forecast", "none (no VEE series)")
    tiers = "\n".join(f"{counted(n, 'day')} {key}" for key, n in summary.lifecycle_days.items()) or "none"
    table.add_row("lake tiers (warm: daily job; cold, archive: weekly job)", tiers)
    preview = (
        "\n".join(f"{counted(n, 'day')} {key}" for key, n in summary.lifecycle_preview.items())
        or "nothing due"
    )
    table.add_row(f"a year on (dry run, +{PREVIEW_DAYS} d)", preview)
    table.add_row("report", summary.report_path)
    table.add_row("took", f"{summary.seconds:.1f} s")
    console.print(table)


def remember_grid_area(
    console: Console, settings: Settings, grid_area: str, judged_under: tuple[str, date] | None = None
) -> None:
    """Keep the demo's area in its home's settings file (`env.home_settings`), so that every later
    command there judges its grid nodes by it without METRIFY_GRID_AREA. A home that remembers
    another area, or whose grid hours were judged under another, holds another network's data: the
    demo refuses it rather than mix the two (and turn every later run of that network to the demo's
    standards). `judged_under`: `grid.area_history.judged_under_another` of the home's database."""
    held = home_settings(settings.home).get("METRIFY_GRID_AREA")
    if held is not None and held != grid_area:
        raise typer.BadParameter(
            f"this home ({settings.home}) was set up for the grid area {held} "
            f"({settings.home / HOME_SETTINGS_FILE}); the demo's network is {grid_area}'s: "
            "run the demo in another METRIFY_HOME",
            param_hint="METRIFY_HOME",
        )
    if judged_under is not None:
        raise typer.BadParameter(
            f"this home's database holds grid hours judged under {judged_under[0]} (of {judged_under[1]}, and maybe "
            f"more); the demo's network is {grid_area}'s: run the demo in another METRIFY_HOME",
            param_hint="METRIFY_HOME",
        )
    path = remember(settings.home, "METRIFY_GRID_AREA", grid_area)
    console.print(f"this home's grid area is {grid_area} (kept in {path} for later commands)")
    if settings.grid_area_from == "METRIFY_GRID_AREA" and settings.grid_area != grid_area:
        console.print(
            f"[yellow]warning[/yellow]: METRIFY_GRID_AREA={settings.grid_area} in this environment "
            f"overrides it for later commands: unset it to judge the demo's grid nodes as {grid_area}'s"
        )


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        meters: Annotated[int, typer.Option(min=1, help="Simulated meters.")] = 200,
        days: Annotated[int, typer.Option(min=1, help="Simulated days.")] = 2,
        start: Annotated[
            datetime,
            typer.Option(
                formats=["%Y-%m-%d"],
                show_default="2026-03-28",
                help="First day (the default spans the UK's DST change).",
            ),
        ] = datetime(2026, 3, 28),
        seed: Annotated[
            int, typer.Option(help="Random seed: the same seed gives the same data and counts.")
        ] = 42,
        fault_rate: Annotated[
            float, typer.Option(min=0.0, max=0.5, help="Share of records with an injected fault.")
        ] = 0.01,
        as_json: Annotated[
            bool,
            typer.Option("--json", help="Print the summary as one JSON object, the only output on stdout."),
        ] = False,
    ) -> None:
        """Simulate data and land it (`metrify simulate`), ingest it and materialise the graph for its days
        (`metrify run`), and print a summary."""
        from metrify_assets.grid.area_history import judged_under_another
        from metrify_assets.reporting.assets import REPORT_KEY
        from metrify_assets.resources.build import postgres_resource
        from metrify_assets.simulation import SimulationConfig, simulate, write_simulation

        console = command_console(stderr=as_json)
        settings = resolve_settings()
        config = SimulationConfig(
            meters=meters, days=days, start=start.date(), seed=seed, fault_rate=fault_rate
        )
        with postgres_resource(settings).connect() as conn:
            judged_under = judged_under_another(conn, config.grid_area)
        remember_grid_area(console, settings, config.grid_area, judged_under)
        with console.status("simulating..."):
            sim = simulate(config)
            landed = write_simulation(
                sim, settings.landing_dir, settings.home / "simulation" / "labels.jsonl"
            )
        console.print(f"landed {len(landed.files)} files in {settings.landing_dir}")
        with environment({"METRIFY_GRID_AREA": config.grid_area}):
            run_with_progress(resolve_settings(), console, trigger="demo")
        with postgres_resource(settings).connect() as conn:
            summary = summarise(
                conn, [f.batch_id for f in landed.files], Lake(settings.lake_url).uri(REPORT_KEY)
            )
            summary.grid_area = config.grid_area
            with console.status("weekly lifecycle (as of the day after the data) and a dry run a year on..."):
                summary.lifecycle_days, summary.lifecycle_preview = demo_lifecycle(settings, conn, config)
        summary.seconds = round(process_age(), 1)
        _print_summary(console, summary)
        if as_json:
            typer.echo(json.dumps(asdict(summary)))
        note_embedded_server(settings)
