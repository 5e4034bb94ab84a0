"""Writing the audit log (`ops.audit_log`, migrations 0013, 0022 and 0023): who changed data or its
fate, under which account and API token, what, when, from where, and how much
(docs/operations.md#audit-log).

Every human or API action that changes data records one entry in the SAME transaction as the change,
so a rolled-back change leaves no entry and a committed one always has its entry. The entry point (a
CLI command, an API route) knows who acts, under which account (and token) and from where, and passes it down as a
`Caller` (the domain code never looks the account up itself); the domain
function that makes the change records the entry. It lives here, below every room that changes data;
`observability/audit.py` reads the log. The table is append-only: a trigger refuses UPDATE, DELETE
and TRUNCATE, and no retention rule sweeps it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

Channel = Literal["cli", "api", "dagster"]


@dataclass(frozen=True)
class Caller:
    """Who acts (the CLI's `--by` or OS user; the API token's subject), through which channel, from
    where (the CLI's host name; the API client's address), and the account that authenticated the
    action (`account`: the OS user who ran the CLI, whatever `--by` names; the API token's subject),
    and over the API the id of the token it carried (`token_id`, its `jti` claim; None without one)."""

    actor: str
    channel: Channel
    origin: str | None = None
    account: str | None = None
    token_id: str | None = None

    @classmethod
    def api(cls, subject: str, client: str | None, token_id: str | None) -> Caller:
        """An API request's caller: the token's subject is the actor and the account that
        authenticated it, from the client's address, with the token's id."""
        return cls(subject, "api", client, account=subject, token_id=token_id)

    def record(
        self,
        conn: psycopg.Connection,
        action: str,
        target: str,
        details: Mapping[str, Any] | None = None,
        affected: int | None = None,
    ) -> int:
        """`record` as this caller."""
        return record(
            conn,
            self.actor,
            action,
            target,
            details,
            self.channel,
            self.origin,
            affected,
            self.account,
            self.token_id,
        )


def record(
    conn: psycopg.Connection,
    actor: str,
    action: str,
    target: str,
    details: Mapping[str, Any] | None = None,
    channel: Channel = "cli",
    origin: str | None = None,
    affected: int | None = None,
    account: str | None = None,
    token_id: str | None = None,
) -> int:
    """Insert one entry in the connection's current transaction (never commits: the change it
    describes commits it) and return its id. Values in `details` that JSON cannot hold are str()."""
    row = conn.execute(
        "INSERT INTO ops.audit_log (actor, action, target, details, channel, origin, affected, account, "
        "token_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            actor,
            action,
            target,
            Jsonb(dict(details or {}), dumps=_dumps),
            channel,
            origin,
            affected,
            account,
            token_id,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)
