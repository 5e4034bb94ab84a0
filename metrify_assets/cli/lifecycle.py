"""The data lifecycle: where each day is (hot, warm, cold, archive), the weekly run, its cost, and the
bucket rules.

`metrify lifecycle status | run | cost | rules`.

The tiers (docs/lifecycle.md): hot PostgreSQL, warm lake (S3 STANDARD), cold (STANDARD_IA), archive
(GLACIER). `status` shows days by tier; `run` runs the weekly job's lifecycle now (with `--dry-run`, what
would move and go); `cost` prices what each tier holds now; `rules` prints (and with --apply, puts on
the lake's bucket) the S3 lifecycle configuration matching the policy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from metrify_assets.cli.audit import cli_caller, who
from metrify_assets.cli.console import command_console, to_json
from metrify_assets.cli.db import connect, note_embedded_server
from metrify_assets.cli.options import parse_day
from metrify_assets.env import resolve_settings
from metrify_assets.lifecycle import holds, state
from metrify_assets.lifecycle.bucket_rules import (
    BucketRulesError,
    apply_bucket_rules,
    bucket_lifecycle_rules,
    bucket_versioned,
)
from metrify_assets.lifecycle.cost import CostReport, PriceTable, cost_report, measure
from metrify_assets.lifecycle.policy import Policy
from metrify_assets.resources.lake import Lake

if TYPE_CHECKING:
    import psycopg

REMOVING_ACTIONS = ("deleted_hot", "expired")  # lifecycle_log actions that take data away
lifecycle_app = typer.Typer(
    help="The data lifecycle: hot PostgreSQL, warm/cold/archive lake tiers, their cost and bucket rules.",
    no_args_is_help=True,
)


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="A YAML file of the lifecycle's run configuration (`ages`, `raw_days`, ..., and for `run` "
        "`dry_run` and `as_of`: docs/lifecycle.md), flat or as the Dagster launchpad's "
        "`ops: {<asset>: {config: ...}}`; default: the defaults.",
        exists=True,
        dir_okay=False,
    ),
]


@dataclass(frozen=True)
class RunConfig:
    """A `--config` file: the policy part of the lifecycle's run configuration, and the clock and dry
    run it may set (which `run` honours; a command-line --as-of wins, a dry run from either counts)."""

    policy: dict[str, Any]
    source: str  # the file, and where in it: "lc.yaml at ops.retention_cleanup.config"
    as_of: date | None = None
    dry_run: bool = False


def _one_line(err: Exception) -> str:
    """A validation error on one line: pydantic's spans several."""
    from pydantic import ValidationError

    if isinstance(err, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in err.errors())
    return " ".join(str(err).split())


def _unwrap(values: dict[str, Any], path: Path) -> tuple[dict[str, Any], str]:
    """The lifecycle configuration of a file in the Dagster launchpad's shape (`ops: {<asset>: {config:
    {...}}}`), and where it was; a flat file as it is. Every lifecycle step gets the one configuration,
    so the steps named must be given the same one."""
    from metrify_assets.orchestration.weekly import LIFECYCLE_ASSETS

    if "ops" not in values:
        return values, str(path)
    assets = ", ".join(LIFECYCLE_ASSETS)
    if set(values) != {"ops"}:
        others = ", ".join(sorted(str(k) for k in values if k != "ops"))
        raise _fail(
            f"{path}: a launchpad configuration (ops:) with other keys ({others}): give either "
            f"ops: {{<asset>: {{config: ...}}}} for {assets}, or the lifecycle's keys alone"
        )
    ops = values["ops"]
    if not isinstance(ops, dict) or not ops:
        raise _fail(f"{path}: ops: must map lifecycle assets ({assets}) to {{config: ...}}")
    unknown = sorted(str(k) for k in ops if k not in LIFECYCLE_ASSETS)
    if unknown:
        raise _fail(
            f"{path}: ops: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a lifecycle "
            f"asset; `metrify lifecycle run` configures {assets}"
        )
    configs: dict[str, dict[str, Any]] = {}
    for name, op in ops.items():
        if not isinstance(op, dict) or set(op) != {"config"} or not isinstance(op["config"], dict):
            raise _fail(f"{path}: ops.{name}: expected {{config: {{...}}}}")
        configs[name] = op["config"]
    first, *rest = configs.values()
    if any(c != first for c in rest):
        raise _fail(
            f"{path}: ops.{', ops.'.join(configs)} have different configurations; `metrify lifecycle run` "
            "gives every lifecycle step the same one: write it once, without ops:"
        )
    return first, f"{path} at " + ", ".join(f"ops.{name}.config" for name in configs)


def read_config(path: Path) -> RunConfig:
    """A lifecycle run configuration file, validated as the assets validate it; unknown keys (which the
    assets would refuse when the run starts) are refused here, naming the accepted ones."""
    import dagster as dg
    import yaml  # type: ignore[import-untyped, unused-ignore]  # PyYAML comes with dagster; its stubs are not a dependency

    from metrify_assets.lifecycle.assets import LifecycleConfig, TierAgesConfig

    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as err:  # ValueError: a YAML date that is none (2026-13-01)
        raise _fail(f"{path}: not a lifecycle configuration: {_one_line(err)}") from err
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise _fail(
            f"{path}: not a lifecycle configuration: a YAML mapping of its keys, got {type(loaded).__name__}"
        )
    values, source = _unwrap(loaded, path)
    accepted = list(LifecycleConfig.model_fields)
    unknown = sorted(str(k) for k in values if k not in accepted)
    if unknown:
        raise _fail(
            f"{source}: unknown {'key' if len(unknown) == 1 else 'keys'} {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted)} (docs/lifecycle.md)"
        )
    ages = values.get("ages")
    tier_keys = list(TierAgesConfig.model_fields)
    for dataset, given in ages.items() if isinstance(ages, dict) else ():
        wrong = sorted(str(k) for k in given if k not in tier_keys) if isinstance(given, dict) else []
        if wrong:
            raise _fail(
                f"{source}: ages.{dataset}: unknown {'key' if len(wrong) == 1 else 'keys'} {', '.join(wrong)}; "
                f"accepted: {', '.join(tier_keys)}"
            )
    if isinstance(values.get("as_of"), date):  # YAML reads an unquoted 2026-02-03 as a date
        values = {**values, "as_of": values["as_of"].isoformat()}
    try:
        config = LifecycleConfig(**values)
        config.policy()
    except (ValueError, TypeError, dg.Failure) as err:  # pydantic's ValidationError is a ValueError
        raise _fail(f"{source}: not a lifecycle configuration: {_one_line(err)}") from err
    try:
        as_of = date.fromisoformat(config.as_of) if config.as_of else None
    except ValueError as err:
        raise _fail(f"{source}: as_of must be a date (YYYY-MM-DD), got {config.as_of!r}") from err
    policy = {k: v for k, v in values.items() if k not in ("as_of", "dry_run")}
    return RunConfig(policy, source, as_of, config.dry_run)


def _policy(values: dict[str, Any]) -> Policy:
    from metrify_assets.lifecycle.assets import LifecycleConfig

    return LifecycleConfig(**values).policy()


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _cost_table(report: CostReport) -> Table:
    table = Table(title=f"storage cost per month (prices: {report.prices.as_of})")
    for column in ("tier", "storage", "bytes", "objects", "rows", "USD/month"):
        table.add_column(column, justify="left" if column in ("tier", "storage") else "right")
    rows = report.rows()
    for i, row in enumerate(rows):
        table.add_row(*(escape(c) for c in row), end_section=i == len(report.lines) - 1)
    return table


@lifecycle_app.command("cost")
def cost_cmd(
    prices: Annotated[
        Path | None,
        typer.Option(
            "--prices",
            exists=True,
            dir_okay=False,
            help="A JSON object of prices (USD per GB-month) replacing the defaults, e.g. "
            '{"hot_postgres": 0.115, "standard": 0.0245}; unknown keys are refused.',
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object.")] = False,
) -> None:
    """What each tier holds and costs per month, against keeping every row in PostgreSQL.

    Hot: the size of ops.meter_readings, ops.grid_status and ops.weather_observations (tables, indexes,
    TOAST). Lake tiers: ops.lifecycle_days by storage class. Raw batches: one listing of raw/. The
    all-hot estimate keeps the lake's rows in PostgreSQL at the measured bytes per row, raw at STANDARD.
    """
    try:
        table = PriceTable.from_json(prices) if prices is not None else PriceTable()
    except (OSError, ValueError) as err:
        raise _fail(str(err)) from err
    settings = resolve_settings()
    lake = Lake(settings.lake_url)
    try:
        with connect(settings) as conn:
            footprint = measure(conn, lake)
    except Exception as err:  # the database or the lake unreachable: said, not a traceback
        raise _fail(f"could not measure the footprint: {type(err).__name__}: {err}") from err
    report = cost_report(footprint, table)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        console = command_console()
        console.print(_cost_table(report))
        console.print(report.summary(), markup=False, highlight=False)
        console.print(f"prices: {table.source}", markup=False, highlight=False)
        for note in report.notes:
            console.print(f"note: {note}", markup=False, highlight=False)
    note_embedded_server(settings)


def _rules_table(rules: dict[str, Any]) -> Table:
    table = Table(title="S3 bucket lifecycle rules (Days count from each object's creation)")
    for column in ("ID", "filter", "transitions", "expiration", "housekeeping"):
        table.add_column(column, overflow="fold")
    for rule in rules["Rules"]:
        flt = rule["Filter"]
        if "And" in flt:
            tags = ", ".join(f"{t['Key']}={t['Value']}" for t in flt["And"].get("Tags", []))
            shown = f"prefix {flt['And'].get('Prefix', '')!r} and tag {tags}"
        else:
            shown = f"prefix {flt.get('Prefix', '')!r}"
        transitions = ", ".join(f"{t['StorageClass']} at {t['Days']} d" for t in rule.get("Transitions", []))
        expiration = rule.get("Expiration", {})
        expires = f"{expiration['Days']} d" if "Days" in expiration else ""
        chores = []
        if "AbortIncompleteMultipartUpload" in rule:
            days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
            chores.append(f"abort multipart uploads after {days} d")
        if "NoncurrentVersionExpiration" in rule:
            days = rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
            chores.append(f"noncurrent versions after {days} d")
        if expiration.get("ExpiredObjectDeleteMarker"):
            chores.append("expired delete markers")
        table.add_row(
            *(
                escape(c)
                for c in (rule["ID"], shown, transitions or "-", expires or "-", "; ".join(chores) or "-")
            )
        )
    return table


@lifecycle_app.command("rules")
def rules_cmd(
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Put the rules on the configured lake's bucket and read them back."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="The LifecycleConfiguration as JSON (as the S3 API takes it).")
    ] = False,
    without_object_lock: Annotated[
        bool,
        typer.Option(
            "--without-object-lock",
            help="Apply expiration rules to a bucket without S3 Object Lock, where they would delete "
            "objects under a legal hold.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="With --apply: make every check and read, and put nothing on the bucket (as does "
            "`dry_run: true` in --config).",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """The S3 lifecycle rules matching the policy (tiers, raw and report retention); --apply puts them on
    the lake's bucket.

    Optional: the pipeline makes every transition itself; on AWS the rules keep the schedule should it
    stop. A rule's Days = the policy's age - 1 (an object is written on or after its day), raised to S3's
    minimums (STANDARD_IA >= 30 days, an archive class >= 30 days after it). A local lake has no rules.
    A dry run (--dry-run, or `dry_run: true` in the --config file) applies nothing.
    """
    file = read_config(config) if config is not None else None
    asked = dry_run_asked(dry_run, file)
    if file is not None:  # what the file sets, before anything is read or put
        said = f"dry run (from {asked})" if asked else "not a dry run"
        if apply and not asked:
            said += " (--apply puts the rules on the bucket)"
        unused = (
            f"; as_of {file.as_of} in {file.source} is not used: S3 counts from each object's creation"
            if file.as_of
            else ""
        )
        typer.echo(f"{said}; policy from {file.source}{unused}", err=as_json)
    settings = resolve_settings()
    lake = Lake(settings.lake_url)
    versioned = True
    if lake.is_s3:
        try:
            versioned = bucket_versioned(lake)
        except Exception as err:  # shown; the rules are still printed, for a versioned bucket
            if apply:
                raise _fail(
                    f"cannot read s3://{lake.bucket}'s versioning: {type(err).__name__}: {err}"
                ) from err
            typer.echo(
                f"note: cannot read s3://{lake.bucket}'s versioning ({err}); assuming a versioned bucket",
                err=True,
            )
    try:
        rules = bucket_lifecycle_rules(
            _policy(file.policy if file is not None else {}),
            prefix=lake.prefix if lake.is_s3 else "",
            versioned=versioned,
        )
    except ValueError as err:
        raise _fail(f"the policy has no valid S3 rules: {err}") from err
    if as_json:
        typer.echo(json.dumps(rules, indent=2))
    else:
        command_console().print(_rules_table(rules))
    if apply:
        try:
            message = apply_bucket_rules(
                lake, rules, require_object_lock=not without_object_lock, dry_run=asked is not None
            )
        except (BucketRulesError, ValueError) as err:
            raise _fail(str(err)) from err
        if asked is not None:
            typer.echo(f"dry run (from {asked}): {message}", err=as_json)
            return
        if lake.is_s3:  # the bucket's rules now expire and move data: audited (after S3 confirmed them)
            with connect(settings) as conn:
                details = {
                    "rules": [r["ID"] for r in rules["Rules"]],
                    "object_lock_required": not without_object_lock,
                }
                target = f"bucket:{lake.bucket}/{lake.prefix}"
                cli_caller(who()).record(conn, "lifecycle.rules_apply", target, details, len(rules["Rules"]))
        typer.echo(message, err=as_json)


@lifecycle_app.command("status")
def status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of the rows.")] = False,
) -> None:
    """Days, rows and bytes per dataset and tier, with how many left PostgreSQL, and the active holds."""
    settings = resolve_settings()
    with connect(settings) as conn:
        tiers = state.tier_table(conn)
        active = holds.list_holds(conn)
    if as_json:
        typer.echo(tiers.to_json(orient="records", date_format="iso"))
        return
    table = Table(title="days in the lake by tier")
    for column in tiers.columns:
        table.add_column(str(column))
    for row in tiers.itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    console = command_console()
    console.print(table if len(tiers) else "no day has a lake copy yet (the daily job writes the warm tier)")
    console.print(
        f"{len(active)} active legal holds"
        + "".join(f"\n  {h.hold_id}: {h.scope} ({h.reason})" for h in active)
    )
    note_embedded_server(settings)


@dataclass(frozen=True)
class RunSettings:
    """The clock and dry run of `lifecycle run`, and where each came from (said in the output)."""

    as_of: date
    as_of_from: str
    dry_run: bool
    dry_run_from: str | None  # None: not a dry run


# How far past today (UTC) a run's clock may be without --allow-future-as-of: a day, for an operator
# whose local date is already tomorrow. A clock years ahead (a typo) plans to expire everything.
FUTURE_AS_OF_MARGIN = timedelta(days=1)


def run_settings(
    as_of: str | None, dry_run: bool, file: RunConfig | None, today: date, allow_future: bool = False
) -> RunSettings:
    """--as-of wins over the file's `as_of` (then today, UTC); a dry run asked for by the flag or by the
    file is a dry run (the safe side). A clock more than `FUTURE_AS_OF_MARGIN` after today is refused
    unless `allow_future` (--allow-future-as-of)."""
    if as_of:
        day, came_from = parse_day(as_of, "--as-of"), "--as-of"
        if file is not None and file.as_of is not None and file.as_of != day:
            came_from += f", over as_of {file.as_of} in {file.source}"
    elif file is not None and file.as_of is not None:
        day, came_from = file.as_of, f"as_of in {file.source}"
    else:
        day, came_from = today, "today, UTC"
    if day > today + FUTURE_AS_OF_MARGIN and not allow_future:
        raise _fail(
            f"as of {day} (from {came_from}) is {(day - today).days} days after today ({today}, UTC): "
            "every day would age by as much, and the run move, trim and expire them as such; "
            "pass --allow-future-as-of to plan or run on that clock"
        )
    asked = dry_run_asked(dry_run, file)
    return RunSettings(day, came_from, asked is not None, asked)


def dry_run_asked(flag: bool, file: RunConfig | None) -> str | None:
    """Where a dry run was asked for (`--dry-run`, the file's `dry_run: true`, or both), or None: either
    one makes it a dry run (the safe side; there is no flag to overrule the file)."""
    asked = [
        *(["--dry-run"] if flag else []),
        *([f"dry_run: true in {file.source}"] if file is not None and file.dry_run else []),
    ]
    return " and ".join(asked) or None


def settings_line(chosen: RunSettings, file: RunConfig) -> str:
    """What `lifecycle run --config` took from where, before it starts."""
    dry = (
        f"dry run (from {chosen.dry_run_from})"
        if chosen.dry_run
        else "not a dry run (days move, data is deleted)"
    )
    return f"as of {chosen.as_of} (from {chosen.as_of_from}); {dry}; policy from {file.source}"


@dataclass(frozen=True)
class FailedDay:
    """A day (or a table-wide step: no day) a lifecycle run could not move or clean, and why."""

    dataset: str
    day: date | None
    why: str


def failed_days(conn: psycopg.Connection, run_id: str) -> list[FailedDay]:
    """The run's `failed` entries in ops.lifecycle_log: the days left where they were."""
    found = conn.execute(
        "SELECT dataset, day, coalesce(detail, '') FROM ops.lifecycle_log "
        "WHERE run_id = %s AND action = 'failed' ORDER BY dataset, day NULLS LAST",
        (run_id,),
    ).fetchall()
    return [FailedDay(str(d), day, str(why)) for d, day, why in found]


def failed_lines(failed: list[FailedDay]) -> list[str]:
    """The closing lines of a run with failed days: how many, then each with its reason."""
    n = len(failed)
    head = (
        f"{n} {'day' if n == 1 else 'days'} failed and {'stays where it was' if n == 1 else 'stay where they were'} "
        f"(copy and hot rows); the next lifecycle run tries {'it' if n == 1 else 'them'} again, and "
        "`metrify alerts list` shows the open alert"
    )
    return [head, *(f"  {f.dataset}{f' {f.day}' if f.day else ''}: {f.why}" for f in failed)]


def _run_id_of(error: str) -> str | None:
    """The run id in a failed run's error (`weekly_job failed (run <id>): ...`)."""
    import re

    found = re.search(r"\(run ([\w-]+)\)", error)
    return found[1] if found else None


@lifecycle_app.command("run")
def run_cmd(
    as_of: Annotated[
        str | None,
        typer.Option(
            help="The lifecycle's today (YYYY-MM-DD), over the --config file's `as_of`; default: the "
            "file's, else today (UTC). More than a day after today is refused without "
            "--allow-future-as-of."
        ),
    ] = None,
    allow_future_as_of: Annotated[
        bool,
        typer.Option(
            "--allow-future-as-of",
            help="Accept an as-of (from --as-of or --config) more than a day after today: a rehearsal "
            "of a future run, which moves, trims and expires days as that clock ages them.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Only record and list what would move and go (as does `dry_run: true` in --config).",
        ),
    ] = False,
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object: each dataset's actions with every day they take.")
    ] = False,
) -> None:
    """Run the weekly job's lifecycle now: days due to the cold and archive tiers, then retention.

    Lists, per dataset and action (move_cold, deleted_hot, held, ...), how many days and rows and which
    days, as ranges of consecutive days (the first few; --json lists every day). Exit status 1 when a
    day failed (each is named at the end, with why) or the run failed."""
    from datetime import UTC, datetime

    file = read_config(config) if config is not None else None
    chosen = run_settings(as_of, dry_run, file, datetime.now(UTC).date(), allow_future_as_of)
    today, dry_run = chosen.as_of, chosen.dry_run

    from metrify_assets.definitions import defs as load_defs
    from metrify_assets.orchestration.instance import RunFailedError, local_instance
    from metrify_assets.orchestration.weekly import run_lifecycle

    policy_config = file.policy if file is not None else {}
    settings = resolve_settings()
    console = command_console(stderr=as_json)
    if file is not None:
        console.print(settings_line(chosen, file), markup=False, highlight=False)
    # The run's steps commit in the Dagster run, each in its own transaction: its audit entry follows
    # it (a failed run's too: its earlier steps may have moved or deleted data).
    caller, target = cli_caller(who()), f"lifecycle:{today}"
    audited: dict[str, object] = {
        "as_of": today.isoformat(),
        "dry_run": dry_run,
        "config": policy_config,
        **({"as_of_from": chosen.as_of_from, "dry_run_from": chosen.dry_run_from} if file else {}),
    }
    error: str | None = None
    span: tuple[date, date] | None = None
    with connect(settings) as conn:
        try:
            with console.status(f"lifecycle as of {today}{' (dry run)' if dry_run else ''}..."):
                run = run_lifecycle(
                    load_defs(), local_instance(settings), conn, today, dry_run, config=policy_config
                )
            run_id: str | None = run.run_id
            span = run.days
        except RunFailedError as err:
            conn.rollback()
            error, run_id = str(err), _run_id_of(str(err))
        done = logged_actions(conn, run_id) if run_id else []
        failed = failed_days(conn, run_id) if run_id else []
        actions = {f"{a.dataset} {a.action}": a.rows for a in done}
        # Affected: what left the database or the lake (the copies and moves are in `rows`).
        removed = sum(a.rows or 0 for a in done if a.action in REMOVING_ACTIONS)
        details = {**audited, "run_id": run_id, "rows": actions, **({"failed": error} if error else {})}
        caller.record(conn, "lifecycle.run", target, details, 0 if dry_run else removed)
        conn.commit()
    if as_json:
        typer.echo(
            to_json(
                {
                    "as_of": today,
                    "dry_run": dry_run,
                    **(
                        {"as_of_from": chosen.as_of_from, "dry_run_from": chosen.dry_run_from} if file else {}
                    ),
                    "run_id": run_id,
                    "tier_days_covered": list(span) if span else None,
                    "actions": [asdict(a) for a in done],
                    "failed": [asdict(f) for f in failed],
                    **({"error": error} if error else {}),
                }
            )
        )
    elif run_id is not None:
        table = Table(title=f"lifecycle as of {today}" + (" (dry run: nothing changed)" if dry_run else ""))
        for column in ("dataset", "action", "days", "rows", "which days"):
            table.add_column(column, overflow="fold")
        for a in done:
            table.add_row(
                escape(a.dataset),
                escape(a.action),
                f"{len(a.days):,}" if a.days else "-",
                "-" if a.rows is None else f"{a.rows:,}",
                days_text(a.days),
            )
        console.print(table if done else "nothing due")
        for a in done:
            if a.why is not None:
                newest = f" ({a.days[-1]})" if a.days else ""
                console.print(f"{escape(a.dataset)} {escape(a.action)}{newest}: {escape(a.why)}")
        covered = f"{span[0]}..{span[1]}" if span else "none (no copy could move)"
        console.print(f"run {run_id}" + ("" if error else f"; tier days covered: {covered}"))
    note_embedded_server(settings)
    if failed:
        head, *each = failed_lines(failed)
        console.print(head, style="red", markup=False, highlight=False)
        for line in each:
            console.print(line, markup=False, highlight=False)
    if error is not None:
        raise _fail(error)
    if failed:
        raise typer.Exit(code=1)


# Ranges of consecutive days `lifecycle run` shows per row; the rest are counted (--json has them all).
SHOWN_RANGES = 4


@dataclass(frozen=True)
class LoggedAction:
    """What a lifecycle run recorded in ops.lifecycle_log for one dataset and action."""

    dataset: str
    action: str
    entries: int  # log entries: one per day, or one for a table-wide step (a retention of ops tables)
    rows: int | None  # None: no entry counted rows (a step with no row count)
    days: list[date]  # the days it took (or would take), in order
    why: str | None = None  # for an action that left days where they are: the newest day's reason


# Actions that leave a day where it is: `lifecycle run` says why beside them.
KEPT_ACTIONS = ("held", "kept", "rebuild_owed", "failed", "late_rows_kept")


def logged_actions(conn: psycopg.Connection, run_id: str) -> list[LoggedAction]:
    """The run's actions per dataset and action, with their days, from ops.lifecycle_log.

    Rows count each day once, as the days column does: the steps that log the same action for a
    tiered dataset's day (a held day stays warm in the cold move, in the archive move, and keeps its
    hot rows in retention) speak of the same rows, so a day counts its largest entry. Other datasets'
    entries of a day are distinct things (each source's landing files) and add up."""
    from metrify_assets.lifecycle.policy import TIERED_DATASETS

    found = conn.execute(
        "WITH per_day AS (SELECT dataset, action, day, count(*) AS n, "
        "CASE WHEN day IS NOT NULL AND dataset = ANY(%s) THEN max(rows) ELSE sum(rows) END AS rows, "
        "(array_agg(detail ORDER BY log_id DESC))[1] AS detail "
        "FROM ops.lifecycle_log WHERE run_id = %s GROUP BY 1, 2, 3) "
        "SELECT dataset, action, sum(n)::int, sum(rows), "
        "coalesce(array_agg(day ORDER BY day) FILTER (WHERE day IS NOT NULL), '{}'), "
        "(array_agg(detail ORDER BY day DESC NULLS LAST))[1] "
        "FROM per_day GROUP BY 1, 2 ORDER BY 1, 2",
        (list(TIERED_DATASETS), run_id),
    ).fetchall()
    return [
        LoggedAction(
            str(d),
            str(a),
            int(n),
            None if r is None else int(r),
            list(days),
            str(why) if a in KEPT_ACTIONS and why else None,
        )
        for d, a, n, r, days, why in found
    ]


def days_text(days: list[date], most: int = SHOWN_RANGES) -> str:
    """`days` as ranges of consecutive days (2026-01-01..2026-01-09, 2026-01-12), the first `most` of
    them and a count of the others; "-" for none."""
    from metrify_assets.partitions import contiguous_ranges, ranges_text  # Dagster: `lifecycle run` only

    ranges = contiguous_ranges(days)
    shown = ranges_text(ranges[:most]) or "-"
    if len(ranges) > most:
        rest = ranges[most:]
        count = sum((b - a).days + 1 for a, b in rest)
        more = f"{count:,} more day{'s' if count > 1 else ''} in {len(rest):,} range{'s' if len(rest) > 1 else ''}"
        shown += f", and {more} (--json lists them)"
    return shown


def register(app: typer.Typer) -> None:
    app.add_typer(lifecycle_app, name="lifecycle")
