"""The dbt warehouse: rebuild marts in full when a change needs it (a column removed or retyped, an
upgrade that says so), after showing which would lose the days the lifecycle deleted from `ops`.

`metrify warehouse rebuild SELECTOR...` runs dbt's `build --full-refresh` on the selection (dbt's
selector grammar: `fct_forecast_accuracy`, `fct_consumption_daily+`, `tag:...`) against this home's
warehouse, with the models' tests, a line per model as it finishes, an audit-log entry and the
API cache's generation moved on (docs/warehouse.md#rebuilding-marts).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from metrify_assets.cli.audit import cli_caller, who
from metrify_assets.cli.console import command_console, counted, to_json
from metrify_assets.cli.db import connect, note_embedded_server, settings_url
from metrify_assets.env import resolve_settings

if TYPE_CHECKING:
    from rich.console import Console

    from metrify_assets.warehouse.rebuild import Outcome, Plan


def print_plan(console: Console, plan: Plan) -> None:
    count = counted(len(plan.models), "model")
    table = Table(title=f"rebuild in full: {count}", show_header=True)
    table.add_column("model")
    table.add_column("materialized")
    table.add_column("rebuilt from")
    for name in plan.models:
        incremental = name in plan.incremental
        lost = plan.loses_history.get(name)
        if lost:
            source = f"[yellow]{escape(', '.join(lost))}[/yellow]"
        else:
            source = "inputs that keep their history" if incremental else "(rebuilt whole on every run)"
        table.add_row(name, "incremental" if incremental else "view / table", source)
    console.print(table)
    if plan.loses_history:
        console.print(
            f"[yellow]{len(plan.loses_history)} incremental "
            f"{'model is' if len(plan.loses_history) == 1 else 'models are'} rebuilt from `ops` tables the "
            "lifecycle deletes old days from[/yellow]: their rows of days no longer in `ops` are not "
            "rebuilt and are lost (`metrify lifecycle status` shows which days left the hot tier). "
            "`metrify restore` brings days back to `ops` first if they must stay."
        )


def print_outcome(console: Console, outcome: Outcome) -> None:
    from metrify_assets.warehouse.rebuild import BUILT

    built = [r for r in outcome.results if r.resource_type in BUILT]
    tests = [r for r in outcome.results if r.resource_type not in BUILT]
    table = Table(title="metrify warehouse rebuild", show_header=False)
    table.add_row("models rebuilt", f"{sum(r.status == 'success' for r in built)} of {len(built)}")
    table.add_row("tests passed", f"{sum(r.status == 'pass' for r in tests)} of {len(tests)}")
    for r in outcome.failed:
        table.add_row(f"  [red]{r.status}[/red]", escape(f"{r.resource_type} {r.name}"))
    for detail in outcome.details:
        table.add_row("  [red]dbt[/red]", escape(detail))
    if outcome.error:
        table.add_row("  [red]dbt failed[/red]", escape(outcome.error))
    table.add_row("took", f"{outcome.seconds:.1f} s")
    console.print(table)


def register(app: typer.Typer) -> None:
    warehouse_app = typer.Typer(
        help="The dbt warehouse: rebuild marts in full when a change needs it.", no_args_is_help=True
    )

    @warehouse_app.command("rebuild")
    def rebuild_cmd(
        select: Annotated[
            list[str],
            typer.Argument(
                help="dbt selectors: a model (fct_forecast_accuracy), with what reads it "
                "(fct_consumption_daily+), a tag (tag:...)."
            ),
        ],
        yes: Annotated[
            bool, typer.Option("--yes", help="Rebuild even models that lose days no longer in ops.")
        ] = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Show what would be rebuilt and lost; change nothing.")
        ] = False,
        by: Annotated[
            str | None, typer.Option(help="Who rebuilds, for the audit log (default: OS user).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the plan and outcome as JSON.")] = False,
    ) -> None:
        """Rebuild the selected dbt models in full (dbt `build --full-refresh`), with their tests, when a
        change needs it (a column removed or retyped; Dagster's partitioned runs never do this). The plan
        comes first: a selected incremental model rebuilt from `ops` tables the lifecycle trims loses the
        rows of days no longer there, so such a rebuild asks for confirmation (or --yes). Exit code 1
        when a model or test failed."""
        import json
        from dataclasses import asdict

        from metrify_assets.lifecycle.retention import TRIMMED_TABLES
        from metrify_assets.resources.cache import open_cache
        from metrify_assets.storage.statistics import analyze_stale
        from metrify_assets.warehouse import rebuild
        from metrify_assets.warehouse.connection import dbt_env, environment
        from metrify_assets.warehouse.project import dbt_cli_resource, ensure_manifest
        from metrify_assets.warehouse.results import NodeResult
        from metrify_assets.warehouse.vars import dbt_vars

        console = command_console(stderr=as_json)
        settings = resolve_settings()
        actor = by or who()
        url = settings_url(settings)
        manifest = json.loads(ensure_manifest().read_text(encoding="utf-8"))
        with environment(dbt_env(url)):
            dbt = dbt_cli_resource()
            with console.status("dbt: selecting"):
                try:
                    ids = rebuild.selected_ids(dbt, select, settings.dbt_runs_dir)
                except ValueError as err:
                    raise typer.BadParameter(str(err), param_hint="SELECT") from err
            plan = rebuild.make_plan(manifest, select, ids, TRIMMED_TABLES)
            if not plan.models:
                raise typer.BadParameter(f"{' '.join(select)!r} selects no model", param_hint="SELECT")
            print_plan(console, plan)
            if dry_run:
                if as_json:
                    typer.echo(to_json({"plan": asdict(plan), "dry_run": True}))
                note_embedded_server(settings)
                return
            if plan.loses_history and not yes:
                if not sys.stdin.isatty():
                    raise typer.BadParameter(
                        "this rebuild loses days no longer in ops (above): pass --yes to rebuild anyway",
                        param_hint="--yes",
                    )
                typer.confirm("Rebuild anyway?", abort=True, err=True)
            with connect(settings, autocommit=True) as conn:
                analyze_stale(conn)
            started = time.monotonic()
            with console.status(
                f"dbt build --full-refresh: {len(plan.models)} models and their tests"
            ) as status:

                def on_result(result: NodeResult) -> None:
                    mark = "green" if result.status in ("success", "pass") else "red"
                    if result.resource_type in rebuild.BUILT or mark == "red":
                        console.print(
                            f"[{mark}]{result.status}[/{mark}] {result.resource_type} {escape(result.name)} "
                            f"({result.seconds:.1f} s)"
                        )
                    status.update(f"dbt build --full-refresh: {time.monotonic() - started:.0f} s")

                outcome = rebuild.rebuild(dbt, plan, dbt_vars(), settings.dbt_runs_dir, on_result)
        cache = open_cache(settings)  # the marts changed (a failed build may have committed some)
        if cache is not None:
            cache.bump(())
            cache.close()
        with connect(settings) as conn:
            cli_caller(actor).record(
                conn,
                "warehouse.rebuild",
                " ".join(select),
                {
                    "models": list(plan.models),
                    "loses_history": plan.loses_history,
                    "ok": outcome.ok,
                    "failed": [f"{r.name}: {r.status}" for r in outcome.failed],
                    "details": list(outcome.details),
                    "error": outcome.error,
                    "seconds": round(outcome.seconds, 1),
                },
                affected=len(plan.models),
            )
            conn.commit()
        if as_json:
            typer.echo(
                to_json(
                    {"plan": asdict(plan), "ok": outcome.ok, "results": [asdict(r) for r in outcome.results]}
                )
            )
        print_outcome(console, outcome)
        note_embedded_server(settings)
        if not outcome.ok:
            raise typer.Exit(1)

    app.add_typer(warehouse_app, name="warehouse")
