"""Reading the audit log (`ops.audit_log`): `metrify audit` and a SIEM export list its entries
(docs/operations.md#audit-log). The entries are written by `storage/audit.py`, in the transaction
of the change each describes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    channel: str
    origin: str | None
    affected: int | None
    account: str | None  # who was authenticated: the OS user behind the CLI, the API token's subject
    token_id: str | None  # the API token's id (its `jti`); None for the CLI and a token without one

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "at": self.at.isoformat()}


def entries(
    conn: psycopg.Connection,
    since: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 100,
    account: str | None = None,
    token_id: str | None = None,
) -> list[AuditEntry]:
    """Entries newest first, at or after `since`, by `actor`, under `account`, with the API token
    `token_id`, for `target`; `action` is an action (`review.approve`) or a family (`review`: every
    `review.*`)."""
    with conn.cursor(row_factory=class_row(AuditEntry)) as cur:
        return cur.execute(
            "SELECT id, at, actor, action, target, details, channel, origin, affected, account, token_id "
            "FROM ops.audit_log WHERE (%(since)s::timestamptz IS NULL OR at >= %(since)s) "
            "AND (%(actor)s::text IS NULL OR actor = %(actor)s) "
            "AND (%(account)s::text IS NULL OR account = %(account)s) "
            "AND (%(token_id)s::text IS NULL OR token_id = %(token_id)s) "
            "AND (%(action)s::text IS NULL OR action = %(action)s OR starts_with(action, %(action)s || '.')) "
            "AND (%(target)s::text IS NULL OR target = %(target)s) "
            "ORDER BY at DESC, id DESC LIMIT %(limit)s",
            {
                "since": since,
                "actor": actor,
                "account": account,
                "token_id": token_id,
                "action": action,
                "target": target,
                "limit": limit,
            },
        ).fetchall()
