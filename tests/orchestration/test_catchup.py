"""`metrify run` runs again the downstream runs that failed before, until one succeeds."""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import typer
from rich.console import Console

from metrify_assets.alerts.store import list_alerts
from metrify_assets.cli.run import print_run_summary
from metrify_assets.contracts import GRID_STATUS
from metrify_assets.env import resolve_settings
from metrify_assets.orchestration.catchup import (
    Plan,
    Progress,
    RecordCounts,
    RunSummary,
    attempt,
    first_run_days,
    materialise_days,
    missing_landing_dir,
    plan_runs,
    run_pipeline,
)
from metrify_assets.resources import PostgresResource
from metrify_assets.storage import rebuilt
from metrify_assets.storage.days import retouch_day
from tests.orchestration.jobs import INGEST_DAY, cli_defs

DAY = date(2026, 11, 30)


@pytest.mark.postgres
def test_a_failed_day_is_run_again_by_each_metrify_run_until_it_succeeds(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """The new-user trial: refresh_job failed for a day, and the next `metrify run` said "batches
    ingested 0 / days materialised none", exited 0 and left the day stale."""
    switch = tmp_path / "broken"
    switch.touch()
    defs, instance = cli_defs(pg_resource, switch), dg.DagsterInstance.ephemeral()
    settings = resolve_settings(
        {"METRIFY_HOME": str(tmp_path), "METRIFY_POSTGRES_URL": pg_resource.get_url()}
    )
    notes: list[str] = []
    progress = Progress(on_note=notes.append)

    first = materialise_days(defs, instance, settings, {DAY: {"grid_status"}}, progress, "cli")
    # daily_job reads what refresh_job builds: not run over the day refresh_job failed for.
    assert (first.jobs, first.skipped) == ([], [f"daily_job {DAY}..{DAY}"])
    assert len(first.failed) == 1 and "divide by zero" in first.failed[0]
    assert (first.retried, notes) == ([], [])
    assert instance.get_materialized_partitions(dg.AssetKey("day_report")) == set()

    again = run_pipeline(defs, instance, settings, progress)  # nothing new, the bug still there
    assert (again.batch_ids, again.day_ranges, again.jobs) == ([], [], [])
    assert again.retried == [f"refresh_job {DAY}..{DAY}"]
    assert again.skipped == [f"daily_job {DAY}..{DAY}"]
    assert notes == [f"refresh_job failed for {DAY}..{DAY} on an earlier run: running it again"]
    assert len(again.failed) == 1 and "divide by zero" in again.failed[0]
    (alert,) = list_alerts(pg, "open")
    assert (alert.subject, alert.occurrences) == (f"refresh_job [{DAY}]", 2)

    switch.unlink()  # the fix
    fixed = run_pipeline(defs, instance, settings, progress)
    assert (fixed.retried, fixed.jobs, fixed.failed, fixed.skipped) == (
        [f"refresh_job {DAY}..{DAY}"],
        [f"refresh_job {DAY}..{DAY}", f"daily_job {DAY}..{DAY}"],  # the day's daily_job follows
        [],
        [],
    )
    assert list_alerts(pg, "open") == []
    assert instance.get_materialized_partitions(dg.AssetKey("day_report")) == {DAY.isoformat()}

    quiet = run_pipeline(defs, instance, settings, progress)
    assert (quiet.retried, quiet.jobs, quiet.failed) == ([], [], [])
    assert len(notes) == 2


@pytest.mark.postgres
def test_a_failed_ingest_stops_neither_the_other_files_nor_their_days(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """A landing file whose ingest run failed aborted all of `metrify run`, before any other file and
    any downstream run: it would fail again, first, on every run."""
    defs, instance = cli_defs(pg_resource, tmp_path / "not-broken"), dg.DagsterInstance.ephemeral()
    settings = resolve_settings(
        {"METRIFY_HOME": str(tmp_path), "METRIFY_POSTGRES_URL": pg_resource.get_url()}
    )
    landing = settings.landing_dir / "grid_status"
    landing.mkdir(parents=True)
    (landing / "1-aaa.jsonl").write_text("a bug\n")
    (landing / "2-bbb.jsonl").write_text("{}\n")
    first = run_pipeline(defs, instance, settings)
    assert first.batch_ids == ["landing-grid_status-bbb"]
    assert first.records == {"grid_status": RecordCounts(records_in=1, accepted=1, flagged=0, quarantined=0)}
    assert "1 record = 1 accepted + 0 quarantined" in summary_text(first)
    assert first.jobs == [f"refresh_job {INGEST_DAY}..{INGEST_DAY}", f"daily_job {INGEST_DAY}..{INGEST_DAY}"]
    (error,) = first.failed
    assert error.startswith("ingest_grid_status_job failed") and "cannot parse 1-aaa.jsonl" in error
    assert first.owed == ["ingest of landing-grid_status-aaa"]
    assert "the next `metrify run` runs again: ingest of landing-grid_status-aaa" in summary_text(first)

    (landing / "1-aaa.jsonl").write_text("{}\n")  # the fix: the next run ingests the file
    fixed = run_pipeline(defs, instance, settings)
    assert (fixed.batch_ids, fixed.failed, fixed.owed) == (["landing-grid_status-aaa"], [], [])
    assert pg.execute("SELECT count(*) FROM ops.ingest_ledger").fetchone() == (2,)


@pytest.mark.postgres
def test_a_failed_run_whose_alert_was_not_recorded_is_recorded_and_run_again_by_the_next_metrify_run(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """The trial: `metrify db stop` while daily_job ran. The run failed, its alert could not be written,
    the summary said it had raised one and would be run again, and the next `metrify run` (no daemon)
    found no alert: "days materialised none", exit 0, the day's marts empty."""
    switch = tmp_path / "broken"
    switch.touch()
    instance = dg.DagsterInstance.ephemeral()
    settings = resolve_settings(
        {"METRIFY_HOME": str(tmp_path), "METRIFY_POSTGRES_URL": pg_resource.get_url()}
    )
    assert run_pipeline(cli_defs(pg_resource, switch), instance, settings).failed == []  # a first run
    down = PostgresResource(url="postgresql://127.0.0.1:1/metrify")  # nothing listens: the server away
    first = materialise_days(
        cli_defs(down, switch), instance, settings, {DAY: {"grid_status"}}, Progress(), "cli"
    )
    (error,) = first.failed
    assert "divide by zero" in error and "its alert could not be recorded: OperationalError" in error
    assert pg.execute("SELECT count(*) FROM ops.run_alerts").fetchone() == (0,)
    text = summary_text(first)
    assert "each raised" not in text
    assert "1 run failed: its alert could not be recorded; the next `metrify run` records it" in text
    assert f"the next `metrify run` runs again: refresh_job {DAY}..{DAY}" in text
    (failed_run,) = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    run_id = failed_run.dagster_run.run_id

    switch.unlink()  # PostgreSQL is back and the bug fixed
    notes: list[str] = []
    again = run_pipeline(cli_defs(pg_resource, switch), instance, settings, Progress(on_note=notes.append))
    assert again.alerts_recorded == [run_id]
    assert notes == [
        f"run {run_id} failed earlier and its alert had not been recorded: recorded now",
        f"refresh_job failed for {DAY}..{DAY} on an earlier run: running it again",
    ]
    assert (again.retried, again.jobs, again.failed) == (
        [f"refresh_job {DAY}..{DAY}"],
        [f"refresh_job {DAY}..{DAY}", f"daily_job {DAY}..{DAY}"],
        [],
    )
    assert pg.execute("SELECT run_id FROM ops.run_alerts").fetchall() == [(run_id,)]
    (alert,) = list_alerts(pg, "all")
    assert (alert.subject, alert.details["run_id"], alert.resolved_at is not None) == (
        f"refresh_job [{DAY}]", run_id, True
    )  # fmt: skip
    assert instance.get_materialized_partitions(dg.AssetKey("day_report")) == {DAY.isoformat()}
    quiet = run_pipeline(cli_defs(pg_resource, switch), instance, settings)
    assert (quiet.alerts_recorded, quiet.retried, quiet.jobs) == ([], [], [])


def test_the_summary_says_which_failed_runs_raised_their_alert() -> None:
    unrecorded = (
        "refresh_job failed (run r2): boom (its alert could not be recorded: OperationalError: x; ...)"
    )
    both = summary_text(RunSummary(failed=["daily_job failed (run r1): boom", unrecorded]))
    assert (
        "2 runs failed: 1 raised a run_failure alert (`metrify alerts list`), and the alert of 1 could not "
        "be recorded; the next `metrify run` records it before it plans its runs"
    ) in both
    none = summary_text(RunSummary(failed=[unrecorded, unrecorded]))
    assert (
        "2 runs failed: none of their alerts could be recorded; the next `metrify run` records them" in none
    )
    recorded = summary_text(RunSummary(alerts_recorded=["r0"], failed=["daily_job failed (run r1): boom"]))
    assert "1 run failed: each raised a run_failure alert" in recorded
    assert "run r0 (failed earlier; its alert had not been recorded)" in recorded


def test_an_owed_run_that_another_planned_run_covers_is_not_run_twice() -> None:
    nov = (date(2026, 11, 28), date(2026, 11, 30))
    oct3 = ("daily_job", date(2026, 10, 3), date(2026, 10, 3))
    owed = [("refresh_job", date(2026, 11, 29), date(2026, 11, 29)), oct3]
    assert plan_runs([nov], owed) == Plan([("refresh_job", *nov), ("daily_job", *nov)], [oct3])
    # Open alerts of the same job for overlapping days: the run over the wider range covers the other.
    wide = ("refresh_job", *nov)
    owed = [("refresh_job", date(2026, 11, 29), date(2026, 11, 29)), oct3, wide]
    assert plan_runs([], owed) == Plan([], [oct3, wide], [("daily_job", *nov)])
    # Every refresh_job before any daily_job; a daily_job follows each owed refresh_job.
    assert plan_runs([nov], [("refresh_job", date(2026, 10, 3), date(2026, 10, 3))]).runs == [
        ("refresh_job", *nov),
        ("refresh_job", date(2026, 10, 3), date(2026, 10, 3)),
        ("daily_job", *nov),
        ("daily_job", date(2026, 10, 3), date(2026, 10, 3)),
    ]


@pytest.mark.postgres
def test_only_the_owed_runs_that_are_run_are_said_to_be_run_again(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    defs, instance = cli_defs(pg_resource, tmp_path / "not-broken"), dg.DagsterInstance.ephemeral()
    settings = resolve_settings(
        {"METRIFY_HOME": str(tmp_path), "METRIFY_POSTGRES_URL": pg_resource.get_url()}
    )
    notes: list[str] = []
    owed = [("refresh_job", DAY, DAY), ("daily_job", date(2026, 10, 3), date(2026, 10, 3))]
    summary = materialise_days(
        defs, instance, settings, {DAY: {"grid_status"}}, Progress(on_note=notes.append), "cli", owed
    )
    assert summary.retried == ["daily_job 2026-10-03..2026-10-03"]
    assert notes == ["daily_job failed for 2026-10-03..2026-10-03 on an earlier run: running it again"]
    assert summary.jobs == [
        f"refresh_job {DAY}..{DAY}",
        f"daily_job {DAY}..{DAY}",
        "daily_job 2026-10-03..2026-10-03",
    ]


def summary_text(summary: RunSummary) -> str:
    """What print_run_summary prints for a summary with a failed run (it exits 1)."""
    out = io.StringIO()
    with pytest.raises(typer.Exit) as exited:
        print_run_summary(Console(file=out, width=200), summary)
    assert exited.value.exit_code == 1
    return out.getvalue()


def test_a_failed_run_fails_the_command_after_the_summary() -> None:
    text = summary_text(
        RunSummary(
            retried=["refresh_job 2026-11-30..2026-11-30"],
            failed=["refresh_job failed (run r1): boom [x]"],
            owed=["refresh_job 2026-11-30..2026-11-30"],
            skipped=["daily_job 2026-11-30..2026-11-30"],
        )
    )
    assert "daily_job 2026-11-30..2026-11-30 (refresh_job failed for those days)" in text
    assert "and daily_job for the days of each refresh_job once that succeeds" in text
    assert "refresh_job 2026-11-30..2026-11-30 (failed before)" in text
    assert "boom [x]" in text and "1 run failed" in text
    assert "the next `metrify run` runs again: refresh_job 2026-11-30..2026-11-30" in text
    assert "training" not in text
    print_run_summary(Console(file=io.StringIO()), RunSummary())  # nothing failed: no exit


@pytest.mark.postgres
def test_a_failed_model_training_is_not_said_to_be_run_again(
    pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """Only refresh_job and daily_job are owed; the training runs again only when meter readings come
    while there is no model."""
    switch = tmp_path / "broken"
    switch.touch()
    defs, instance = cli_defs(pg_resource, switch), dg.DagsterInstance.ephemeral()
    summary = RunSummary()
    assert not attempt(summary, defs, "weekly_job", instance, {}, ["weekly_model"])
    summary.training_failed = True
    assert summary.owed == [] and "no readings" in summary.failed[0]
    text = summary_text(summary)
    assert "next `metrify run` runs again" not in text
    assert re.search(r"anomaly model trained\W+failed", text)
    assert "training is not run again by itself" in text


@pytest.mark.postgres
def test_a_second_metrify_run_materialises_the_days_stamped_since_the_first(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """The new-user trial: a reviewer rejected a reading of an older day, and the next `metrify run`
    said "days materialised: none", leaving the marts without the decision. (Grid days: meter days
    would make the command train the anomaly model first, which these jobs do not have.)"""
    defs, instance = cli_defs(pg_resource, tmp_path / "no switch"), dg.DagsterInstance.ephemeral()
    settings = resolve_settings(
        {"METRIFY_HOME": str(tmp_path), "METRIFY_POSTGRES_URL": pg_resource.get_url()}
    )
    old, other = date(2026, 10, 1), date(2026, 10, 5)
    pg.execute(
        "INSERT INTO ops.ingest_days (batch_id, source, day, records) VALUES ('old', 'grid_status', %s, 9)",
        (old,),
    )
    pg.commit()
    done = date(2026, 9, 20)  # stamped, then rebuilt by every refreshed asset: nothing owed
    pg.execute(
        "INSERT INTO ops.ingest_days (batch_id, source, day, records) VALUES ('done', 'grid_status', %s, 4)",
        (done,),
    )
    pg.commit()
    began = rebuilt.begin(pg)
    for asset in rebuilt.REFRESHED:
        rebuilt.stamp(pg, asset, done, done, began)
    pg.commit()
    # A data engineer's trial: readings `metrify kafka drain` stored before the first `metrify run`
    # reached no VEE series nor mart. The first run takes the days stamped before it that no refresh
    # has rebuilt since.
    first = run_pipeline(defs, instance, settings)
    assert first.day_ranges == [(old, old)]

    retouch_day(pg, GRID_STATUS, "old", {"grid_node_id": "N-1", "measured_at": f"{old}T12:00:00Z"})
    pg.execute(  # a batch the daemon or the API ingested meanwhile
        "INSERT INTO ops.ingest_days (batch_id, source, day, records) VALUES ('api', 'grid_status', %s, 1)",
        (other,),
    )
    pg.execute(  # a batch whose every record was quarantined: nothing new on its arrival day
        "INSERT INTO ops.ingest_days (batch_id, source, day, records) VALUES ('bad', 'grid_status', %s, 0)",
        (date(2026, 10, 9),),
    )
    pg.commit()
    second = run_pipeline(defs, instance, settings)
    assert second.day_ranges == [(old, old), (other, other)]
    assert second.jobs == [f"{job} {d}..{d}" for job in ("refresh_job", "daily_job") for d in (old, other)]
    assert run_pipeline(defs, instance, settings).day_ranges == [], "nothing stamped since"


@pytest.mark.postgres
def test_a_day_stamped_by_a_transaction_that_commits_later_is_materialised(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """A batch the daemon is still ingesting has taken a lower seq than a batch committed meanwhile:
    a `metrify run` between the two commits must not move its cursor past the first one's day."""
    defs, instance = cli_defs(pg_resource, tmp_path / "no switch"), dg.DagsterInstance.ephemeral()
    settings = resolve_settings(
        {"METRIFY_HOME": str(tmp_path), "METRIFY_POSTGRES_URL": pg_resource.get_url()}
    )
    slow, quick = date(2026, 10, 1), date(2026, 10, 5)
    stamp = "INSERT INTO ops.ingest_days (batch_id, source, day, records) VALUES (%s, 'grid_status', %s, 1)"
    earlier = date(2026, 9, 1)
    pg.execute(stamp, ("earlier", earlier))  # the first run's cursor: this seq
    pg.commit()
    assert run_pipeline(defs, instance, settings).day_ranges == [(earlier, earlier)]  # owed before it
    with psycopg.connect(pg_resource.get_url()) as ingesting:
        ingesting.execute(stamp, ("slow", slow))  # not committed yet
        pg.execute(stamp, ("quick", quick))
        pg.commit()
        assert run_pipeline(defs, instance, settings).day_ranges == [(quick, quick)]
        ingesting.commit()
    after = run_pipeline(defs, instance, settings)
    assert after.day_ranges == [(slow, slow), (quick, quick)], "the quick day again, past the gap"
    assert run_pipeline(defs, instance, settings).day_ranges == []


def test_an_idle_run_says_nothing_to_do() -> None:
    """The README promised "nothing to do"; an idle run printed the whole table of zeros and nones."""
    out = io.StringIO()
    print_run_summary(Console(file=out, width=200), RunSummary(seconds=2.3))
    assert out.getvalue().strip() == (
        "metrify run: nothing to do (no landing file, Kafka message or touched day waiting, and no failed "
        "run owed; 2.3 s)"
    )
    busy = io.StringIO()
    print_run_summary(Console(file=busy, width=200), RunSummary(batch_ids=["b1"], seconds=2.3))
    assert "batches ingested" in busy.getvalue()


@pytest.mark.postgres
def test_a_missing_landing_directory_is_a_warning_not_nothing_to_do(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`METRIFY_LANDING_DIR=/tmp/x/nolanding metrify run` said only "nothing to do": the mistyped
    directory is a warning on stderr. A fresh home's default directory, not created yet, is not."""
    defs, instance = cli_defs(pg_resource, tmp_path / "not-broken"), dg.DagsterInstance.ephemeral()
    base = {"METRIFY_HOME": str(tmp_path / "home"), "METRIFY_POSTGRES_URL": pg_resource.get_url()}
    mistyped = tmp_path / "nolanding"
    summary = run_pipeline(defs, instance, resolve_settings({**base, "METRIFY_LANDING_DIR": str(mistyped)}))
    assert summary.idle
    assert summary.landing_missing is not None
    assert summary.landing_missing.startswith(
        f"the landing directory {mistyped} (METRIFY_LANDING_DIR) does not exist"
    )
    print_run_summary(Console(file=io.StringIO()), summary)
    assert capsys.readouterr().err.startswith(f"metrify run: warning: the landing directory {mistyped}")
    assert run_pipeline(defs, instance, resolve_settings(base)).landing_missing is None  # a fresh home

    # The default directory missing while the ledger holds landed batches is said too, unless Kafka is
    # configured (the ledger is not searched for a landed batch among its Kafka ones).
    default = tmp_path / "home" / "landing"
    assert missing_landing_dir(pg, default, named=False, kafka=False) is None
    pg.execute(
        "INSERT INTO ops.ingest_ledger (batch_id, source, origin, origin_ref, raw_key, records_in, accepted, "
        "flagged, quarantined) VALUES ('landing-grid_status-aaa', 'grid_status', 'landing', 'f', 'raw', 1, 1, 0, 0)"
    )
    assert "though the ledger holds batches landed there" in (
        missing_landing_dir(pg, default, named=False, kafka=False) or ""
    )
    assert missing_landing_dir(pg, default, named=False, kafka=True) is None
    default.mkdir(parents=True)
    assert missing_landing_dir(pg, default, named=True, kafka=False) is None
    (tmp_path / "a-file").write_text("")
    assert "is not a directory" in (
        missing_landing_dir(pg, tmp_path / "a-file", named=True, kafka=False) or ""
    )


@pytest.mark.postgres
def test_the_first_runs_owed_days_carry_every_source_that_touched_them(pg: psycopg.Connection) -> None:
    """The sources decide what the run does first (meter days train the anomaly model): a meter day
    touched last by a weather batch is still a meter day."""
    day = date(2026, 10, 1)
    stamp = "INSERT INTO ops.ingest_days (batch_id, source, day, records) VALUES (%s, %s, %s, 1)"
    pg.execute(stamp, ("meters", "meter_readings", day))
    pg.commit()
    pg.execute(stamp, ("weather", "weather_observations", day))
    pg.commit()
    assert first_run_days(pg) == {day: {"meter_readings", "weather_observations"}}
