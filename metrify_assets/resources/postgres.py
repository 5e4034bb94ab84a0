"""PostgreSQL: any server by URL, or the embedded one (`storage/embedded_server.py`) in a local data
directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from psycopg_pool import ConnectionPool

from metrify_assets.storage.embedded_server import postgres_url
from metrify_assets.storage.migrate import migrated_connection


class PostgresResource(dg.ConfigurableResource):
    """The operational database. `url` empty means: the embedded server in `data_dir`."""

    url: str | None = None
    data_dir: str = ".metrify/pg"

    def get_url(self) -> str:
        return postgres_url(self.url, self.data_dir)

    @contextmanager
    def connect(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A connection to a database at the current schema version, that commits on success and
        rolls back on error. Pending migrations are applied on the first connection of a process."""
        with migrated_connection(self.get_url(), autocommit) as conn:
            yield conn

    @contextmanager
    def pool(self, size: int) -> Iterator[ConnectionPool]:
        """Up to `size` connections for work spread over threads, one checked out per unit of work
        (`with pool.connection() as conn`: committed on success, rolled back on error, replaced if
        broken). The schema is brought up to date first, before any thread connects."""
        with self.connect():
            pass
        with ConnectionPool(self.get_url(), min_size=0, max_size=size) as pool:
            yield pool
