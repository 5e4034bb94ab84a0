"""Snowflake: a connection to the warehouse account, for the load into its RAW schema.

Metrify's own resource rather than dagster-snowflake's: that package imports the Snowflake Python
API (`snowflake.core`) for its components, about 7 s on 2 cores, which every process that loads the
definitions paid (code server, each run, the CLI) even when the target is PostgreSQL. The connector
itself is imported only when a connection is opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from snowflake.connector import SnowflakeConnection


class SnowflakeResource(dg.ConfigurableResource):
    """A Snowflake account. `host`, `port` and `protocol` are for endpoints other than the account's
    own (fakesnow in tests, a private link); left empty, the connector derives them from `account`."""

    account: str
    user: str
    password: str | None = None
    database: str | None = None
    warehouse: str | None = None
    role: str | None = None
    host: str | None = None
    port: int | None = None
    protocol: str | None = None

    def connect_args(self) -> dict[str, Any]:
        """The keyword arguments for `snowflake.connector.connect`, without the unset ones."""
        fields = ("account", "user", "password", "database", "warehouse", "role", "host", "port", "protocol")
        return {name: getattr(self, name) for name in fields if getattr(self, name) is not None}

    @contextmanager
    def get_connection(self) -> Iterator[SnowflakeConnection]:
        """An open connection that commits on success, rolls back on error and is closed on exit."""
        import snowflake.connector

        conn = snowflake.connector.connect(application="metrify", **self.connect_args())
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
