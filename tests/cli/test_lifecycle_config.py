"""`metrify lifecycle run --config FILE`: what a file may say and how it is read (pure: a refused file
stops before any database). A trial's `dry_run: true` file ran destructively (the loader dropped
`dry_run` and `as_of`), and the docs' launchpad-shaped example died in a DagsterInvalidConfigError
traceback; tests/lifecycle/test_cli_config.py runs both against a database."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from metrify_assets.cli.lifecycle import (
    FailedDay,
    RunConfig,
    failed_lines,
    read_config,
    run_settings,
    settings_line,
)
from metrify_assets.cli.main import app

TODAY = date(2026, 12, 6)


def write(tmp_path: Path, text: str, name: str = "lc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_flat_file_keeps_its_dry_run_and_as_of_beside_the_policy(tmp_path: Path) -> None:
    path = write(tmp_path, "dry_run: true\nas_of: 2026-02-03\nages: {grid_status: {hot_days: 14}}\n")
    read = read_config(path)
    assert (read.dry_run, read.as_of, read.source) == (True, date(2026, 2, 3), str(path))
    assert read.policy == {"ages": {"grid_status": {"hot_days": 14}}}  # what the assets get beside them
    quoted = read_config(write(tmp_path, "as_of: '2026-02-03'\n", "q.yaml"))
    assert (quoted.as_of, quoted.dry_run, quoted.policy) == (date(2026, 2, 3), False, {})
    assert read_config(write(tmp_path, "", "empty.yaml")) == RunConfig({}, str(tmp_path / "empty.yaml"))


def test_the_launchpad_shape_of_the_docs_is_unwrapped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ops:\n  retention_cleanup:\n    config: {dry_run: true, ages: {grid_status: {hot_days: 14}}}\n",
    )
    read = read_config(path)
    assert read.dry_run and read.policy == {"ages": {"grid_status": {"hot_days": 14}}}
    assert read.source == f"{path} at ops.retention_cleanup.config"
    same = "config: {dry_run: true, raw_days: 500}"
    both = read_config(
        write(tmp_path, f"ops:\n  cold_tier: {{{same}}}\n  retention_cleanup: {{{same}}}\n", "b.yaml")
    )
    assert both.dry_run and both.policy == {"raw_days": 500}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "dry_run: true\nbogus: 1\nhot_days: 3\n",
            "unknown keys bogus, hot_days; accepted: as_of, dry_run, ages, raw_ia_days, raw_days, "
            "quarantine_days, reports_days, ops_days, landing_days",
        ),
        (
            "ages: {grid_status: {hot_day: 14}}\n",
            "ages.grid_status: unknown key hot_day; accepted: hot_days, warm_days, cold_days, archive_class, "
            "expire_days",
        ),
        ("ops:\n  train_model:\n    config: {}\n", "ops: train_model is not a lifecycle asset"),
        (
            "ops: {retention_cleanup: {config: {}}}\nresources: {}\n",
            "a launchpad configuration (ops:) with other keys (resources)",
        ),
        (
            "ops:\n  retention_cleanup: {config: {dry_run: true}}\n  cold_tier: {config: {}}\n",
            "have different configurations",
        ),
        ("ops: {retention_cleanup: {dry_run: true}}\n", "ops.retention_cleanup: expected {config: {...}}"),
        ("as_of: 2026-02-03T10:00:00\n", "as_of must be a date (YYYY-MM-DD), got '2026-02-03T10:00:00'"),
        ("as_of: 2026-13-01\n", "not a lifecycle configuration: month must be in 1..12"),
        ("dry_run: maybe\n", "not a lifecycle configuration: dry_run: Input should be a valid boolean"),
        ("ages: {solar: {}}\n", "ages given for unknown sources ['solar']"),
        ("- dry_run\n", "a YAML mapping of its keys, got list"),
    ],
)
def test_a_file_the_run_would_refuse_is_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(typer.Exit):
        read_config(path)
    # Through the command: one line on stderr, exit 1, no traceback, before any database is opened.
    result = CliRunner().invoke(app, ["lifecycle", "run", "--config", str(path)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {path}") and message in line, line


def test_the_command_line_clock_wins_and_a_dry_run_from_either_side_counts(tmp_path: Path) -> None:
    file = RunConfig({}, "lc.yaml", as_of=date(2026, 2, 3), dry_run=True)
    chosen = run_settings(None, False, file, TODAY)
    assert (chosen.as_of, chosen.as_of_from, chosen.dry_run, chosen.dry_run_from) == (
        date(2026, 2, 3),
        "as_of in lc.yaml",
        True,
        "dry_run: true in lc.yaml",
    )
    assert settings_line(chosen, file) == (
        "as of 2026-02-03 (from as_of in lc.yaml); dry run (from dry_run: true in lc.yaml); policy from lc.yaml"
    )
    over = run_settings("2026-03-01", True, file, TODAY)
    assert (over.as_of, over.as_of_from) == (date(2026, 3, 1), "--as-of, over as_of 2026-02-03 in lc.yaml")
    assert over.dry_run_from == "--dry-run and dry_run: true in lc.yaml"
    plain = RunConfig({}, "lc.yaml")
    applied = run_settings(None, False, plain, TODAY)
    assert (applied.as_of, applied.as_of_from, applied.dry_run, applied.dry_run_from) == (
        TODAY,
        "today, UTC",
        False,
        None,
    )
    assert "not a dry run" in settings_line(applied, plain)
    assert run_settings(None, True, plain, TODAY).dry_run_from == "--dry-run"
    assert run_settings(None, True, None, TODAY).dry_run


def test_a_clock_far_ahead_is_refused_unless_asked_for() -> None:
    """A trial's `--as-of 2099-01-01 --dry-run` planned to expire everything without a word."""
    assert run_settings(str(date(2026, 12, 7)), False, None, TODAY).as_of == date(2026, 12, 7)  # the margin
    for as_of, file in (("2099-01-01", None), (None, RunConfig({}, "lc.yaml", as_of=date(2026, 12, 8)))):
        with pytest.raises(typer.Exit):
            run_settings(as_of, True, file, TODAY)
    assert run_settings("2099-01-01", True, None, TODAY, allow_future=True).as_of == date(2099, 1, 1)
    result = CliRunner().invoke(app, ["lifecycle", "run", "--as-of", "2099-01-01", "--dry-run"])
    assert result.exit_code == 1, result.output
    assert "days after today" in result.stderr and "--allow-future-as-of" in result.stderr


def test_failed_days_are_named_with_their_reasons() -> None:
    lines = failed_lines(
        [
            FailedDay("grid_status", date(2026, 1, 1), "not moved to cold: bytes differ"),
            FailedDay("ops", None, "ops.quality_alerts: deadlock"),
        ]
    )
    assert lines[0].startswith("2 days failed and stay where they were")
    assert lines[1:] == [
        "  grid_status 2026-01-01: not moved to cold: bytes differ",
        "  ops: ops.quality_alerts: deadlock",
    ]
    assert failed_lines([FailedDay("grid_status", date(2026, 1, 1), "x")])[0].startswith(
        "1 day failed and stays where it was (copy and hot rows); the next lifecycle run tries it again"
    )
