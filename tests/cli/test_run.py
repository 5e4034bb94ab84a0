"""`metrify run`'s progress (a bar per stage that ends when the next begins, none for an idle stage) and
the time its summary gives (from the command's start, saying how much was start-up)."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from metrify_assets.cli import run
from metrify_assets.cli.run import print_run_summary, stage_progress
from metrify_assets.orchestration.catchup import RunSummary


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def printed(script: list[tuple[str, object]]) -> list[str]:
    """The lines a console without a terminal got from `script`: ("plan", (stage, total)),
    ("step", text), ("wait", s)."""
    clock, out = Clock(), io.StringIO()
    console = Console(file=out, width=120, get_time=clock, force_terminal=False)
    with stage_progress(console) as progress:
        for kind, arg in script:
            if kind == "plan":
                progress.on_plan(*arg)  # type: ignore[misc]
            elif kind == "step":
                progress.on_step(str(arg))
            else:
                clock.now += float(arg)  # type: ignore[arg-type]
    return [" ".join(line.split()) for line in out.getvalue().splitlines() if line.strip()]


def drawn(script: list[tuple[str, object]]) -> list[str]:
    """The bars left on screen after `script` (without the step lines logged before them)."""
    return [line for line in printed(script) if not line.startswith("[")]


def test_without_a_terminal_each_step_is_a_line_with_the_time_since_the_start() -> None:
    """A trial's `metrify run 2> log` wrote nothing for 11 minutes, then every bar at once."""
    lines = printed([
        ("plan", ("ingesting landing files", 2)), ("wait", 3), ("step", "ingested a.csv"),
        ("plan", ("draining Kafka", 0)), ("wait", 62), ("step", "ingested k1"),
    ])  # fmt: skip
    assert lines[:3] == [
        "[0:00:00] ingesting landing files: 2 to do",
        "[0:00:03] ingesting landing files 1/2: ingested a.csv",
        "[0:01:05] draining Kafka 1/?: ingested k1",
    ], lines


def test_a_stage_with_nothing_to_do_leaves_no_line() -> None:
    """A trial's idle `metrify run` kept `ingesting landing files … 0/? 0:01:48` on screen."""
    lines = drawn([("plan", ("ingesting landing files", 0)), ("wait", 30), ("plan", ("materialising", 0))])
    assert lines == []


def test_a_stage_stops_its_clock_when_the_next_begins() -> None:
    """The ingest bar counted on while the marts were materialising (also on a second `metrify demo`)."""
    lines = drawn([
        ("plan", ("ingesting landing files", 2)), ("step", "ingested a.csv"), ("step", "ingested b.csv"),
        ("wait", 5), ("plan", ("materialising", 1)), ("wait", 100), ("step", "daily_job"), ("wait", 100),
    ])  # fmt: skip
    ingest = next(line for line in lines if line.startswith("ingesting landing files"))
    marts = next(line for line in lines if line.startswith("materialising"))
    assert ingest.endswith("2/2 0:00:05"), ingest
    assert marts.endswith("1/1 0:03:20"), marts
    assert "ingested" not in ingest  # the stage's name, not its last step


def test_an_open_count_shows_once_a_step_comes_and_ends_at_what_it_counted() -> None:
    """Kafka's stage is planned without a count: drained batches show it, `3/3` at the end."""
    lines = drawn([
        ("plan", ("ingesting landing files", 0)), ("plan", ("draining Kafka", 0)),
        ("step", "ingested k1"), ("step", "ingested k2"), ("step", "ingested k3"), ("wait", 2),
        ("plan", ("materialising", 0)),
    ])  # fmt: skip
    assert len(lines) == 1 and lines[0].startswith("draining Kafka") and lines[0].endswith("3/3 0:00:02"), (
        lines
    )


def test_the_time_counts_from_the_process_start() -> None:
    """Not from the import of the module, nor from the pipeline's start."""
    code = (
        "import time; time.sleep(1.5); from metrify_assets.cli.run import process_age; print(process_age())"
    )
    age = float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert 1.5 <= age < 60


def test_the_summary_says_how_much_of_its_time_was_start_up() -> None:
    """A trial's idle `metrify run` printed `nothing to do (… ; 0.2 s)` after 24.5 s: the imports of
    Dagster, dbt and GX were not counted."""
    out = io.StringIO()
    print_run_summary(Console(file=out, width=300), RunSummary(seconds=0.2, startup_seconds=24.3))
    assert (
        out.getvalue()
        .strip()
        .endswith(
            "failed run owed; 24.5 s: 0.2 s of work after 24.3 s of start-up loading Dagster, dbt, GX and the "
            "code location)"
        )
    )
    busy = io.StringIO()
    print_run_summary(
        Console(file=busy, width=300), RunSummary(batch_ids=["b1"], seconds=3.0, startup_seconds=20.0)
    )
    took = next(line for line in busy.getvalue().splitlines() if "took" in line)
    assert "23.0 s: 3.0 s of work after 20.0 s of start-up" in took


def test_the_pipeline_notes_the_start_up_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from metrify_assets import definitions
    from metrify_assets.orchestration import catchup, instance

    ages = iter([17.04])
    monkeypatch.setattr(run, "process_age", lambda: next(ages))
    monkeypatch.setattr(definitions, "defs", lambda: "defs")
    monkeypatch.setattr(instance, "local_instance", lambda settings: "instance")

    def pipeline(defs: Any, inst: Any, settings: Any, progress: Any, trigger: str) -> RunSummary:
        assert (defs, inst) == ("defs", "instance"), "loaded before the start-up is measured"
        return RunSummary(seconds=0.2)

    monkeypatch.setattr(catchup, "run_pipeline", pipeline)
    monkeypatch.setattr(run, "failed_checks_since", lambda inst, began, trigger: [])
    summary = run.pipeline_with_progress(None, Console(file=io.StringIO()), "cli")  # type: ignore[arg-type]
    assert (summary.startup_seconds, summary.seconds) == (17.0, 0.2)


def test_a_run_cut_short_by_the_database_names_its_failed_runs_and_what_repairs_them() -> None:
    """A trial's `metrify db stop` during `metrify run` ended in the outage's line alone: no summary
    said which runs failed or that the next `metrify run` makes them up."""
    import dagster as dg

    from metrify_assets.partitions import TRIGGER_TAG
    from metrify_assets.run_alerts import RANGE_END_TAG, RANGE_START_TAG

    @dg.op
    def boom() -> None:
        raise RuntimeError("PostgreSQL went away")

    @dg.job(name="daily_job")
    def daily_job() -> None:
        boom()

    @dg.op
    def fine() -> None:
        pass

    @dg.job(name="refresh_job")
    def refresh_job() -> None:
        fine()

    with dg.instance_for_test() as instance:
        began = datetime.now(UTC)
        days = {RANGE_START_TAG: "2031-02-03", RANGE_END_TAG: "2031-02-04"}
        daily_job.execute_in_process(
            instance=instance, tags={TRIGGER_TAG: "cli", **days}, raise_on_error=False
        )
        refresh_job.execute_in_process(instance=instance, tags={TRIGGER_TAG: "cli", **days})
        daily_job.execute_in_process(instance=instance, tags={TRIGGER_TAG: "demo"}, raise_on_error=False)
        failed = run.failed_since(instance, began, "cli")
    assert len(failed) == 1 and failed[0].startswith("daily_job 2031-02-03..2031-02-04 (run "), failed
    line = run.cut_short(failed)
    assert line.startswith(
        f"metrify run stopped; 1 run failed before it, with no alert recorded yet: {failed[0]}."
    )
    assert "The next `metrify run` records their alerts and runs them again" in line
    assert run.cut_short([]).startswith("metrify run stopped before any run failed")
