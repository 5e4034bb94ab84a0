"""SQLite engines that keep their connection open, for the local instance's Dagster storage.

Dagster's SQLite storages build an engine without a pool for every read and write and dispose of it
after: each event of a run opens its database, commits and closes it. In WAL mode a commit syncs the
log to disk (`synchronous=FULL`), and the close of a database's last connection checkpoints the log
into it and syncs again: storing an ingest run's 27 events took 0.16 s on a quiet disk and 0.54-0.76
s on a busy one, against 0.04-0.06 s with the connection held (docs/decisions.md). Here each
database keeps one engine per process whose pool holds its connection open, with
`synchronous=NORMAL`, SQLite's setting for WAL: a commit is not synced, the log is synced at each
checkpoint, and a committed write can be lost only with the machine (power, kernel), never with the
process; the database stays consistent either way.

The engines are per process, and a fork (the drain's workers, the warm launcher's runs) closes the
forking process's connections first, so that no child inherits an open one. SQLite keeps its lock
bookkeeping per process and file: a child's own connection to a file its parent had open shares the
copied bookkeeping and never takes its locks, so the parent's last close could checkpoint and delete
the write-ahead log under the child's commits; and the child closing an inherited connection (as the
garbage collector does) is what SQLite says never to do. The parent opens its connections again on
next use. At most `MAX_ENGINES` are held: a webserver reading many runs' databases closes the least
recently used one.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

MAX_ENGINES = 16
# Dagster's own wait for a database another process is writing to (SQLITE_BUSY_TIMEOUT_SECONDS).
BUSY_TIMEOUT_S = 30

_engines: OrderedDict[str, Engine] = OrderedDict()
_lock = threading.Lock()


def held_engine(url: str) -> Engine:
    """This process's engine for the SQLite database at `url`, made on first use."""
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            _engines.move_to_end(url)
            return engine
        engine = sa.create_engine(
            url, poolclass=QueuePool, pool_size=1, connect_args={"timeout": BUSY_TIMEOUT_S}
        )
        sa.event.listen(engine, "connect", _unsynced_commits)
        _engines[url] = engine
        while len(_engines) > MAX_ENGINES:
            _, oldest = _engines.popitem(last=False)
            oldest.dispose()
        return engine


def release() -> None:
    """Close this process's held connections: before Dagster removes the files, or when the storage
    is disposed of."""
    with _lock:
        _close_all()


def _close_all() -> None:
    while _engines:
        _engines.popitem()[1].dispose()


def _unsynced_commits(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _close_before_fork() -> None:
    """Close the held connections and keep the lock until the fork is done, so that no thread opens
    one in between. A connection another thread is using at that moment stays open, as with
    Dagster's own engines."""
    _lock.acquire()
    _close_all()


def _release_after_fork() -> None:
    _lock.release()


def _reset_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # the copy is held by the forking thread, which the child has not


os.register_at_fork(
    before=_close_before_fork, after_in_parent=_release_after_fork, after_in_child=_reset_lock_in_child
)
