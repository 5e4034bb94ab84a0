"""The local Dagster instance: one SQLite event log for every run in a new home, and a home whose
events Dagster already keeps per run keeps them there."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage, SqliteEventLogStorage

from metrify_assets.env import Settings, resolve_settings
from metrify_assets.orchestration.instance import (
    LOCAL_HEADER,
    execute_job,
    local_dagster_yaml,
    local_instance,
)


@dg.asset
def numbers() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"count": 3})


DEFS = dg.Definitions(assets=[numbers], jobs=[dg.define_asset_job("numbers_job", [numbers])])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "dagster home"  # a space: the event log's path is quoted in the YAML
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    yield home


def settings(tmp_path: Path) -> Settings:
    return resolve_settings({"METRIFY_HOME": str(tmp_path / "metrify")})


def test_a_new_home_keeps_every_run_in_one_event_log(home: Path, tmp_path: Path) -> None:
    with local_instance(settings(tmp_path)) as instance:
        assert isinstance(instance.event_log_storage, ConsolidatedSqliteEventLogStorage)
        first = execute_job(DEFS, "numbers_job", instance)
        second = execute_job(DEFS, "numbers_job", instance)
        assert {e.run_id for e in instance.all_logs(first.run_id)} == {first.run_id}
        latest = instance.get_latest_materialization_event(dg.AssetKey("numbers"))
        assert latest is not None and latest.run_id == second.run_id
    assert (home / "history" / "event_log.db").is_file()
    assert not list((home / "history").glob("runs/*.db")), "no per-run event log files"
    # Opened again, the home's config is kept as written (not rewritten each time).
    before = (home / "dagster.yaml").stat().st_mtime_ns
    with local_instance(settings(tmp_path)) as instance:
        assert isinstance(instance.event_log_storage, ConsolidatedSqliteEventLogStorage)
        assert len(instance.get_runs()) == 2
    assert (home / "dagster.yaml").stat().st_mtime_ns == before


def test_a_home_with_per_run_event_logs_keeps_them(home: Path, tmp_path: Path) -> None:
    # A home that Dagster's defaults created (`dagster dev` first, or an older release of metrify).
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, SqliteEventLogStorage)
        old = execute_job(DEFS, "numbers_job", instance)
    (home / "dagster.yaml").write_text(f"{LOCAL_HEADER} 0.1)\ntelemetry:\n  enabled: false\n")
    with local_instance(settings(tmp_path)) as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        assert {e.run_id for e in instance.all_logs(old.run_id)} == {old.run_id}, "old logs still read"
        latest = instance.get_latest_materialization_event(dg.AssetKey("numbers"))
        assert latest is not None and latest.run_id == old.run_id
    assert "event_log_storage" not in (home / "dagster.yaml").read_text()
    assert "WarmRunLauncher" in (home / "dagster.yaml").read_text(), "the rest is brought up to date"
    assert not (home / "history" / "event_log.db").exists()


def test_a_config_the_user_wrote_is_theirs(home: Path, tmp_path: Path) -> None:
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with local_instance(settings(tmp_path)) as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_the_yaml_names_the_home_it_was_written_for(tmp_path: Path) -> None:
    text = local_dagster_yaml(tmp_path / "a")
    assert text.startswith(LOCAL_HEADER)
    assert f'base_dir: "{(tmp_path / "a" / "history").resolve()}"' in text
    assert os.fspath(tmp_path / "b") not in text
