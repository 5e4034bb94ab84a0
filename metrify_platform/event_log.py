"""The local instance's event log: Dagster's SQLite storage, each new run's database copied from a
template instead of built from scratch.

Dagster's SQLite event log keeps one database per run. Making one creates its tables and stamps it
through alembic, which loads and compiles all of Dagster's revision scripts: 0.1-0.2 s of every
run, before its first event is stored. Here the first run shard a process needs is made that way
once, as a template in `<base_dir>/.template/` named for the Dagster version (a new version has
another schema head, so it makes its own and removes the old one), and every later run's database
is a copy of it, put in place with a hard link so that a reader never sees half a file. Anything
unusual (a shard that already exists, even empty; a file system without hard links; an index
shard) is left to Dagster's own initialisation. Reads and writes are Dagster's, through a connection
each database keeps open in this process (`sqlite_engines`) instead of one opened per event.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from metrify_platform import sqlite_engines

TEMPLATE_DIR = ".template"


class TemplatedSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` (same files, same `base_dir` config) that copies new run shards from
    a template. Configure it as `event_log_storage` in `dagster.yaml`."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> TemplatedSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @property
    def template_path(self) -> Path:
        return Path(self._base_dir) / TEMPLATE_DIR / f"run-{dagster.__version__}.sqlite"

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        """Dagster's `_connect` (its lock, its initialisation once per shard, one transaction), on
        the shard's held engine instead of a new one.

        A write to a run's database touches the file: the UI follows a running run's log by
        watching it change (`watch`), which Dagster's engine did by closing the database after
        each write, folding the write-ahead log in; a held connection leaves the commit in the log.
        """
        with self._db_lock:
            engine = sqlite_engines.held_engine(self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                changes = _total_changes(conn)
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME and _total_changes(conn) != changes:
                    os.utime(self.path_for_shard(shard))  # after the commit: a watcher reads it

    def wipe(self) -> None:
        sqlite_engines.release()  # Dagster removes the run shards' files
        super().wipe()

    def dispose(self) -> None:
        sqlite_engines.release()
        super().dispose()

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        database = engine.url.database
        if (
            for_index_shard
            or not database
            or Path(database).exists()
            or not self._copy_template(Path(database))
        ):
            super()._initdb(engine, for_index_shard)

    def _copy_template(self, shard: Path) -> bool:
        """Put a copy of the template at `shard` unless something is there by then; whether it did."""
        try:
            template = self.ensure_template()
            staged = _staging(template.parent)
        except OSError:
            return False
        try:
            shutil.copyfile(template, staged)
            os.link(staged, shard)  # fails if a concurrent connection created the shard meanwhile
            return True
        except OSError:
            return False
        finally:
            staged.unlink(missing_ok=True)

    def ensure_template(self) -> Path:
        """The template, made by Dagster's own initialisation the first time any process needs it
        (a process about to fork run workers makes it first, so that they do not each make one)."""
        template = self.template_path
        if template.exists():
            return template
        template.parent.mkdir(exist_ok=True)
        staged = _staging(template.parent)
        try:
            engine = create_engine(f"sqlite:///{staged}", poolclass=NullPool)
            super()._initdb(engine)
            engine.dispose()  # its last connection closed: SQLite has folded the write-ahead log in
            staged.replace(template)
        finally:
            staged.unlink(missing_ok=True)
        _remove_other_templates(template)
        return template


def _total_changes(conn: Connection) -> int:
    """Rows the SQLite connection under `conn` has changed since it was opened."""
    return int(conn.connection.dbapi_connection.total_changes)  # type: ignore[union-attr]


def _remove_other_templates(template: Path) -> None:
    """Drop the templates of other Dagster versions: after an upgrade nothing copies them again. A
    process still on the old version that finds its template gone makes it again, or (mid-copy)
    leaves that shard to Dagster's own initialisation."""
    for other in template.parent.glob("run-*.sqlite"):
        if other != template:
            other.unlink(missing_ok=True)


def _staging(directory: Path) -> Path:
    """A new empty file to build in (SQLite takes an empty file as a new database), its mode from the
    umask as for the databases Dagster makes (a temporary file's would be owner-only)."""
    staged = directory / f"{uuid.uuid4().hex}.staged"
    staged.touch(exist_ok=False)
    return staged
