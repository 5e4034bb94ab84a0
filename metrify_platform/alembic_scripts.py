"""Dagster's alembic revision scripts, read once per process instead of at every storage's open.

Opening a Dagster instance on SQLite checks each storage's schema (runs, schedules, the event log's
index) against the head of Dagster's alembic scripts (`dagster._core.storage.sql
.check_alembic_revision`), and alembic finds the head by reading and compiling every revision
script, again for each check: 0.06-0.09 s of every instance opened. A run forked by the warm
launcher, and each drain worker, opens its instance anew. The scripts do not change while a process
runs: `share` makes the checks use one read `ScriptDirectory` per script location, and `warm` reads
Dagster's in a process about to fork, so that its children inherit them read.
"""

from __future__ import annotations

import threading

from alembic.config import Config
from alembic.script import ScriptDirectory
from dagster._core.storage import sql as dagster_sql

_read: dict[tuple[str, tuple[str, ...]], ScriptDirectory] = {}
_lock = threading.Lock()


class SharedScriptDirectory(ScriptDirectory):
    """What `check_alembic_revision` builds from a config: the process's one read of its scripts."""

    @classmethod
    def from_config(cls, config: Config) -> ScriptDirectory:
        where = (
            config.get_alembic_option("script_location") or "",
            tuple(config.get_version_locations_list() or ()),
        )
        with _lock:
            scripts = _read.get(where)
            if scripts is None:
                scripts = _read[where] = ScriptDirectory.from_config(config)
            return scripts


def share() -> None:
    """From now on in this process, Dagster's schema checks read each script location once."""
    dagster_sql.ScriptDirectory = SharedScriptDirectory  # type: ignore[misc]


def warm() -> None:
    """`share`, and read Dagster's storage scripts now: for a process that forks workers or runs."""
    share()
    config = Config()
    config.set_main_option("script_location", dagster_sql.ALEMBIC_SCRIPTS_LOCATION)
    SharedScriptDirectory.from_config(config).as_revision_number("head")  # reads every revision
