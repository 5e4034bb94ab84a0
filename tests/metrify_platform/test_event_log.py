"""TemplatedSqliteEventLogStorage: run shards copied from a template have the schema, alembic stamp,
journal mode and file mode of Dagster's own, and anything unusual is left to Dagster's initialisation;
each database keeps one connection per process, and a forked child opens its own."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from metrify_assets.env import resolve_settings
from metrify_assets.orchestration.instance import local_instance
from metrify_platform import sqlite_engines
from metrify_platform.event_log import TemplatedSqliteEventLogStorage


def _event(run_id: str, message: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level="INFO",
        user_message=message,
        run_id=run_id,
        timestamp=time.time(),
        job_name="job",
        dagster_event=DagsterEvent(
            DagsterEventType.ENGINE_EVENT.value, "job", message=message, event_specific_data=EngineEventData()
        ),
    )


def _schema(db: Path) -> tuple[list[tuple[str, str, str | None]], list[tuple[str]], str]:
    with sqlite3.connect(db) as conn:
        objects = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
        stamp = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return objects, stamp, journal


def test_a_run_shard_from_the_template_is_the_one_dagster_makes(tmp_path: Path) -> None:
    ours = TemplatedSqliteEventLogStorage(str(tmp_path / "ours"))
    theirs = SqliteEventLogStorage(str(tmp_path / "theirs"))
    for storage in (ours, theirs):
        for run in ("run-a", "run-b"):
            storage.store_event(_event(run, f"{run} started"))
            storage.store_event(_event(run, f"{run} done"))
    assert ours.template_path.is_file(), "the first shard made the template"
    for run in ("run-a", "run-b"):
        assert _schema(tmp_path / "ours" / f"{run}.db") == _schema(tmp_path / "theirs" / f"{run}.db")
        assert [e.user_message for e in ours.get_logs_for_run(run)] == [f"{run} started", f"{run} done"]
    objects, stamp, journal = _schema(tmp_path / "ours" / "run-a.db")
    assert any(name == "event_logs" for _, name, _ in objects) and stamp and journal == "wal"
    assert sorted(ours.get_all_run_ids()) == ["run-a", "run-b"], "the template is not taken for a run"
    assert [p.suffix for p in ours.template_path.parent.iterdir()] == [".sqlite"], "nothing staged left"
    mode = (tmp_path / "theirs" / "run-a.db").stat().st_mode & 0o777
    assert (tmp_path / "ours" / "run-a.db").stat().st_mode & 0o777 == mode, "readable as Dagster's are"


def test_another_process_copies_the_template_it_finds(tmp_path: Path) -> None:
    first = TemplatedSqliteEventLogStorage(str(tmp_path))
    first.store_event(_event("run-a", "a"))
    made = first.template_path.stat().st_mtime_ns
    second = TemplatedSqliteEventLogStorage(str(tmp_path))  # a new process starts with no shards known
    second.store_event(_event("run-b", "b"))
    assert second.template_path.stat().st_mtime_ns == made
    assert [e.user_message for e in first.get_logs_for_run("run-b")] == ["b"]


def test_an_upgrade_replaces_the_old_versions_template(tmp_path: Path) -> None:
    storage = TemplatedSqliteEventLogStorage(str(tmp_path))
    old = storage.template_path.with_name("run-1.0.0.sqlite")
    old.parent.mkdir()
    old.write_bytes(b"an older Dagster's schema")
    storage.store_event(_event("run-a", "a"))
    assert sorted(p.name for p in old.parent.iterdir()) == [storage.template_path.name]
    assert [e.user_message for e in storage.get_logs_for_run("run-a")] == ["a"]


def test_an_existing_shard_is_left_to_dagster(tmp_path: Path) -> None:
    SqliteEventLogStorage(str(tmp_path)).store_event(_event("run-a", "before"))
    ours = TemplatedSqliteEventLogStorage(str(tmp_path))
    ours.store_event(_event("run-a", "after"))
    assert [e.user_message for e in ours.get_logs_for_run("run-a")] == ["before", "after"]
    # A shard some connection created empty in the meantime is initialised by Dagster, not replaced.
    (tmp_path / "run-b.db").touch()
    ours.store_event(_event("run-b", "kept"))
    assert [e.user_message for e in ours.get_logs_for_run("run-b")] == ["kept"]
    assert not ours.template_path.exists(), "no new shard was made, so no template either"


def test_the_local_instance_stores_events_where_dagster_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "a home: with # odd characters"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with local_instance(resolve_settings({"METRIFY_HOME": str(tmp_path)})) as instance:
        assert isinstance(instance.event_log_storage, TemplatedSqliteEventLogStorage)
        run = instance.create_run_for_job(job_def=dg.JobDefinition(graph_def=dg.GraphDefinition("noop")))
        instance.report_engine_event("hello", run)
        assert (home / "history" / "runs" / f"{run.run_id}.db").is_file()
        assert [e.message for e in instance.all_logs(run.run_id)] == ["hello"]


def _messages(storage: SqliteEventLogStorage, run_id: str) -> list[str]:
    return [e.user_message for e in storage.get_logs_for_run(run_id)]


def _dbapi(storage: TemplatedSqliteEventLogStorage, run_id: str) -> tuple[object, int]:
    with storage.run_connection(run_id) as conn:
        synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar_one()
        return conn.connection.dbapi_connection, synchronous


def test_a_database_keeps_one_unsynced_connection(tmp_path: Path) -> None:
    storage = TemplatedSqliteEventLogStorage(str(tmp_path))
    storage.store_event(_event("run-a", "a"))
    first, synchronous = _dbapi(storage, "run-a")
    storage.store_event(_event("run-a", "b"))
    assert _dbapi(storage, "run-a")[0] is first, "each event does not open the database again"
    assert synchronous == 1, "NORMAL: commits are not synced in WAL mode"
    assert _messages(SqliteEventLogStorage(str(tmp_path)), "run-a") == ["a", "b"]


def test_a_forked_child_opens_its_own_connections(tmp_path: Path) -> None:
    storage = TemplatedSqliteEventLogStorage(str(tmp_path))
    storage.store_event(_event("run-a", "parent before"))
    inherited = sqlite_engines.held_engine(storage.conn_string_for_shard("run-a"))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: as a drain's worker writes the events of its runs
        try:
            storage.store_event(_event("run-a", "child"))
            storage.store_event(_event("run-b", "child"))
            fresh = sqlite_engines.held_engine(storage.conn_string_for_shard("run-a")) is not inherited
            os.write(write, b"fresh" if fresh else b"inherited")
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert answer == b"fresh"
    storage.store_event(_event("run-a", "parent after"))  # the parent's connection still works
    assert _messages(storage, "run-a") == ["parent before", "child", "parent after"]
    assert _messages(storage, "run-b") == ["child"]


def test_a_childs_commits_outlive_its_parents_connections(tmp_path: Path) -> None:
    """A child that inherited an open connection to a database opened its own without SQLite's
    locks (their bookkeeping is per process, copied by the fork): the parent's close of its last
    connection then checkpointed and deleted the write-ahead log under the child, losing its
    later commits."""
    storage = TemplatedSqliteEventLogStorage(str(tmp_path))
    storage.store_event(_event("run-a", "parent"))
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a drain's worker writing while its parent goes on
        try:
            storage.store_event(_event("run-a", "child 1"))
            os.write(done_write, b"1")
            os.read(go_read, 1)
            storage.store_event(_event("run-a", "child 2"))
        finally:
            os._exit(0)
    assert os.read(done_read, 1) == b"1"
    sqlite_engines.release()  # the parent closes its connections (disposed, least recently used)
    os.write(go_write, b"2")
    os.waitpid(pid, 0)
    assert _messages(SqliteEventLogStorage(str(tmp_path)), "run-a") == ["parent", "child 1", "child 2"]


def test_a_running_runs_log_is_followed(tmp_path: Path) -> None:
    """The UI's live run log (`watch`) wakes when the run's database file changes."""
    writer = TemplatedSqliteEventLogStorage(str(tmp_path))
    watcher = TemplatedSqliteEventLogStorage(str(tmp_path))
    writer.store_event(_event("run-a", "first"))
    seen: list[str] = []
    watcher.watch("run-a", None, lambda entry, _cursor: seen.append(entry.user_message))
    try:
        writer.store_event(_event("run-a", "second"))
        deadline = time.monotonic() + 5
        while seen != ["first", "second"] and time.monotonic() < deadline:
            time.sleep(0.05)
        followed = list(seen)  # before dispose closes the connections, which changes the file too
    finally:
        watcher.dispose()
    assert followed == ["first", "second"]


def test_a_wiped_log_starts_new_databases(tmp_path: Path) -> None:
    storage = TemplatedSqliteEventLogStorage(str(tmp_path))
    storage.store_event(_event("run-a", "old"))
    storage.wipe()
    assert not (tmp_path / "run-a.db").exists()
    storage.store_event(_event("run-a", "new"))
    assert (tmp_path / "run-a.db").is_file(), "written to a new file, not to the removed one"
    assert _messages(SqliteEventLogStorage(str(tmp_path)), "run-a") == ["new"]


def test_the_least_recently_used_database_is_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_engines, "MAX_ENGINES", 2)
    sqlite_engines.release()
    storage = TemplatedSqliteEventLogStorage(str(tmp_path))
    for run in ("run-a", "run-b", "run-a", "run-c"):
        storage.store_event(_event(run, run))
    held = [storage.conn_string_for_shard(run) for run in ("run-a", "run-c")]
    assert list(sqlite_engines._engines) == held, "run-b, used least recently, was closed"
    assert _messages(storage, "run-b") == ["run-b"]
