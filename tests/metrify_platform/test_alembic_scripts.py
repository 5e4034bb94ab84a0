"""alembic_scripts: once warmed, opening a Dagster instance (what every forked run and drain worker
does) reads no alembic revision script, and its schema checks find the same head as alembic's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from dagster._core.storage import sql as dagster_sql

from metrify_assets.env import resolve_settings
from metrify_assets.orchestration.instance import local_instance
from metrify_platform import alembic_scripts


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Each read of a script directory's revision files, by directory; Dagster's own checks restored after."""
    seen: list[str] = []
    load = ScriptDirectory._load_revisions

    def counted(self: ScriptDirectory) -> object:
        seen.append(self.dir)
        return load(self)

    monkeypatch.setattr(ScriptDirectory, "_load_revisions", counted)
    monkeypatch.setattr(dagster_sql, "ScriptDirectory", ScriptDirectory)
    monkeypatch.setattr(alembic_scripts, "_read", {})
    yield seen


def _materializations(instance: dg.DagsterInstance) -> None:
    """A read of the event log's index, which opens (and checks) its database."""
    instance.fetch_materializations(dg.AssetKey("nothing"), limit=1)


def test_a_warmed_process_opens_an_instance_without_reading_scripts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    instance = local_instance(resolve_settings({"METRIFY_HOME": str(tmp_path)}))
    _materializations(instance)
    unshared = len(reads)
    assert unshared >= 3, "runs, schedules and the event log's index are each checked"
    reads.clear()
    alembic_scripts.warm()
    assert len(reads) == 1
    again = dg.DagsterInstance.from_ref(instance.get_ref())
    _materializations(again)
    again.get_runs(limit=1)
    assert reads == [reads[0]], "the instance opened again read nothing"
    assert Path(reads[0]).samefile(ScriptDirectory.from_config(_dagster_config()).dir)


def test_the_shared_head_is_alembics_own(reads: list[str]) -> None:
    alembic_scripts.share()
    for storage in ("runs", "schedules", "event_log"):
        config = dagster_sql.get_alembic_config(
            str(Path(dagster_sql.__file__).parent / storage / "sqlite" / "sqlite_storage.py")
        )
        shared = dagster_sql.ScriptDirectory.from_config(config)
        assert shared.as_revision_number("head") == ScriptDirectory.from_config(config).as_revision_number(
            "head"
        )
    assert len(set(reads)) == 1 and len(reads) == 4, "three storages share one read, plus alembic's own"


def _dagster_config() -> Config:
    config = Config()
    config.set_main_option("script_location", dagster_sql.ALEMBIC_SCRIPTS_LOCATION)
    return config
