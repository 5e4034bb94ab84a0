"""Reviewers' decisions on flagged records in `ops.review_queue`.

A flagged record was accepted into its operational table and queued here (docs/decisions.md).
Approving it keeps it (its `quality_flags` stay, for audit). Rejecting it moves the stored row to
`ops.quarantine` with reason `review_rejected:<why>` and moves one record of the batch's ledger from
accepted (and flagged) to quarantined, so `records_in = accepted + quarantined` still holds. The
ingest consults `rejected_versions` so a replayed batch does not bring a rejected reading back.
Either decision stamps the record's day of its batch again (`retouch_day`), so the day's VEE series
and marts are rebuilt with it, as after a late batch. A flagged version that a newer one replaced cannot
be judged: a decision on it closes the item as `superseded`, naming the batch that replaced it beside the
reviewer's reason, and changes no data (the newer version is judged on its own if flagged).
A decision stores the reviewer as named (`decided_by`) and the account that was authenticated
when it was made (`decided_account`, from the entry point's `Caller`), as its audit entry does.
Each function works inside one transaction of the given connection and commits it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from metrify_assets.contracts import SourceContract, contract_for
from metrify_assets.quality import review_context
from metrify_assets.quality.quarantine import REVIEW_REJECTED, QuarantineRow, quarantine
from metrify_assets.quality.quarantine import payload as quarantined_payload
from metrify_assets.storage.audit import Caller
from metrify_assets.storage.days import METER_TIMEZONE, retouch_day

if TYPE_CHECKING:  # the Redis client would cost `metrify review list`, which never writes, up to 0.7 s
    from metrify_assets.resources.cache import Cache

SUPERSEDED = "superseded"
MAX_NOTE = 2000  # characters of a decision's note (`decision_note`), from the CLI or the API
STATUSES = ("pending", "approved", "rejected", SUPERSEDED)
REJECT_REASON_PREFIX = f"{REVIEW_REJECTED}:"
# Derived tables keyed like the meter readings: a rejected reading must not linger in them.
DERIVED_TABLES = {"meter_readings": ("anomaly_scores", "enriched_meter_readings")}


class ReviewError(ValueError):
    """A decision that cannot be made (unknown item, already decided, no reviewer or note)."""


class UnknownItemError(ReviewError):
    """No review item has that batch id and record index."""


class AlreadyDecidedError(ReviewError):
    """The item is no longer pending (decided meanwhile, by someone else or an earlier run)."""


@dataclass(frozen=True)
class ReviewItem:
    batch_id: str
    record_index: int
    source: str
    record_key: str
    reasons: str
    status: str
    decided_by: str | None  # the reviewer as named: the CLI's --by (typed), the API token's subject
    # Who was authenticated when the decision was made: the OS user that ran the CLI, the API token's
    # subject. None while pending, and for a decision made before it was recorded (migration 0023).
    decided_account: str | None
    decided_at: datetime | None
    decision_note: str | None
    flagged_at: datetime


_ITEM_COLUMNS = (
    "batch_id, record_index, source, record_key, reasons, status, decided_by, decided_account, "
    "decided_at, decision_note, flagged_at"
)


def list_items(
    conn: psycopg.Connection,
    status: str | None = "pending",
    source: str | None = None,
    reason: str | None = None,
    limit: int = 50,
    meter: str | None = None,
    offset: int = 0,
) -> list[ReviewItem]:
    """Queue rows, oldest first, filtered by status (None: all), source, a reason code and a meter,
    after skipping the first `offset` of them."""
    rows = conn.execute(
        f"SELECT {_ITEM_COLUMNS} FROM ops.review_queue WHERE {ITEM_FILTER} "
        "ORDER BY flagged_at, batch_id, record_index LIMIT %(limit)s OFFSET %(offset)s",
        {**filter_params(status, source, reason, meter), "limit": limit, "offset": offset},
    ).fetchall()
    return [ReviewItem(*row) for row in rows]


def count_items(
    conn: psycopg.Connection,
    status: str | None = "pending",
    source: str | None = None,
    reason: str | None = None,
    meter: str | None = None,
) -> int:
    """How many queue rows `list_items` would list without its limit and offset."""
    row = conn.execute(
        f"SELECT count(*) FROM ops.review_queue WHERE {ITEM_FILTER}",
        filter_params(status, source, reason, meter),
    ).fetchone()
    return int(row[0]) if row else 0


# The meter a queue row is about, as SQL: a meter reading's record_key is its meter_id, "|" and its
# reading_start; a grid or weather record is about no meter (NULL, which equals nothing). The list's
# meter filter and the API's meter-limited tokens both select by it (`item_meter` in Python).
ITEM_METER = "CASE WHEN source = 'meter_readings' THEN split_part(record_key, '|', 1) END"
ITEM_FILTER = (
    "(%(status)s::text IS NULL OR status = %(status)s) "
    "AND (%(source)s::text IS NULL OR source = %(source)s) "
    "AND (%(reason)s::text IS NULL OR %(reason)s = ANY(string_to_array(reasons, ','))) "
    f"AND (%(meter)s::text IS NULL OR {ITEM_METER} = %(meter)s)"
)


def filter_params(
    status: str | None, source: str | None, reason: str | None, meter: str | None = None
) -> dict[str, str | None]:
    """The named parameters of `ITEM_FILTER` (shared with the API's list); None filters nothing. A
    meter selects that meter's readings (meter_readings items) only."""
    if status is not None and status not in STATUSES:
        raise ReviewError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)} or all")
    return {"status": status, "source": source, "reason": reason, "meter": meter}


# The local day of a meter reading (`METER_TIMEZONE`: its meter's time zone, UTC for an unregistered
# meter), over `ITEM_REGISTRY`'s row `m`: the meter-day VEE re-runs after a decision on it
# (`revee_reading`); NULL for grid and weather records.
ITEM_REGISTRY = f"LEFT JOIN ops.meters m ON m.meter_id = {ITEM_METER}"
ITEM_DAY = (
    "CASE WHEN source = 'meter_readings' THEN (split_part(record_key, '|', 2)::timestamptz AT TIME ZONE "
    f"{METER_TIMEZONE.as_string()})::date END"
)


@dataclass(frozen=True)
class Selection:
    """The pending items a bulk decision takes (`metrify review approve|reject --meter ...`, `POST
    /v1/review/bulk/approve|reject`). A day bound selects meter readings only, by their local day (the
    meter-day VEE re-runs); `meters`: a meter-limited token's meters (None: any)."""

    source: str | None = None
    reason: str | None = None
    meter: str | None = None
    first: date | None = None
    last: date | None = None
    meters: tuple[str, ...] | None = None

    def empty(self) -> bool:
        """No filter given: a decision over the whole queue, which is refused."""
        bounds = (self.source, self.reason, self.meter, self.first, self.last)
        return all(v is None for v in bounds)

    def describe(self) -> str:
        one_day = self.first is not None and self.first == self.last
        named = (
            ("source", self.source),
            ("reason", self.reason),
            ("meter", self.meter),
            ("day", self.first if one_day else None),
            ("from", None if one_day else self.first),
            ("to", None if one_day else self.last),
        )
        return ", ".join(f"{k} {v}" for k, v in named if v is not None) or "no filter"


@dataclass(frozen=True)
class Selected:
    batch_id: str
    record_index: int
    meter: str | None  # the meter of a meter reading (`ITEM_METER`), None for grid and weather
    day: date | None  # its local day (`ITEM_DAY`)


def select_pending(conn: psycopg.Connection, selection: Selection) -> list[Selected]:
    """The pending items `selection` takes, oldest first (what a bulk decision then decides one by one)."""
    if selection.empty():
        raise ReviewError("a bulk decision needs a filter (a meter, a reason, a source or days)")
    if selection.first and selection.last and selection.first > selection.last:
        raise ReviewError(f"--from {selection.first} is after --to {selection.last}")
    conditions = [ITEM_FILTER]
    params: dict[str, Any] = dict(
        filter_params("pending", selection.source, selection.reason, selection.meter)
    )
    if selection.first is not None:
        conditions.append(f"{ITEM_DAY} >= %(first)s")
        params["first"] = selection.first
    if selection.last is not None:
        conditions.append(f"{ITEM_DAY} <= %(last)s")
        params["last"] = selection.last
    if selection.meters is not None:
        conditions.append(f"{ITEM_METER} = ANY(%(meters)s)")
        params["meters"] = list(selection.meters)
    rows = conn.execute(
        f"SELECT batch_id, record_index, {ITEM_METER}, {ITEM_DAY} FROM ops.review_queue {ITEM_REGISTRY} "
        f"WHERE {' AND '.join(conditions)} ORDER BY flagged_at, batch_id, record_index",
        params,
    ).fetchall()
    conn.commit()  # a read: no transaction left open while the decisions take their own
    return [Selected(*row) for row in rows]


def get_item(conn: psycopg.Connection, batch_id: str, record_index: int, lock: bool = False) -> ReviewItem:
    row = conn.execute(
        f"SELECT {_ITEM_COLUMNS} FROM ops.review_queue WHERE batch_id = %s AND record_index = %s"
        + (" FOR UPDATE" if lock else ""),
        (batch_id, record_index),
    ).fetchone()
    if row is None:
        raise UnknownItemError(f"no review item {batch_id} #{record_index}")
    return ReviewItem(*row)


def key_values(contract: SourceContract, record_key: str) -> dict[str, str]:
    """Split a queue row's `record_key` ("a|b") back into the natural-key columns."""
    parts = record_key.split("|")
    if len(parts) != len(contract.key):
        raise ReviewError(f"record key {record_key!r} does not match {contract.source}'s key {contract.key}")
    return dict(zip(contract.key, parts, strict=True))


def _key_filter(contract: SourceContract) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = %({})s").format(sql.Identifier(k), sql.SQL(k)) for k in contract.key
    )


def stored_row(conn: psycopg.Connection, item: ReviewItem) -> dict[str, Any] | None:
    """The operational row the item refers to (None when it is gone), as JSON-ready values."""
    contract = contract_for(item.source)
    query = sql.SQL("SELECT to_jsonb(t) FROM ops.{} t WHERE {}").format(
        sql.Identifier(contract.table), _key_filter(contract)
    )
    row = conn.execute(query, key_values(contract, item.record_key)).fetchone()
    return None if row is None else dict(row[0])


def _decide(
    conn: psycopg.Connection,
    item: ReviewItem,
    status: str,
    by: str,
    why: str,
    caller: Caller | None,
    stored: bool = True,
) -> ReviewItem:
    """Record the decision, with the account `caller` was authenticated as, and, unless it changes no
    stored data (it closes a superseded item, or approves a reading whose day left PostgreSQL), stamp
    the record's day again so it is rebuilt with it."""
    conn.execute(
        "UPDATE ops.review_queue SET status = %s, decided_by = %s, decided_account = %s, decided_at = now(), "
        "decision_note = %s WHERE batch_id = %s AND record_index = %s",
        (status, by, caller.account if caller else None, why, item.batch_id, item.record_index),
    )
    if status != SUPERSEDED and stored:
        contract = contract_for(item.source)
        retouch_day(conn, contract, item.batch_id, key_values(contract, item.record_key))
    return get_item(conn, item.batch_id, item.record_index)


def check_decision(by: str, why: str) -> None:
    """Refuse a decision without who made it or why, or with too long a reason (before any item)."""
    missing = [
        what for what, given in (("who made it (--by)", by), ("why (--reason)", why)) if not given.strip()
    ]
    if missing:
        raise ReviewError(f"a decision needs {' and '.join(missing)}: it is blank")
    if len(why) > MAX_NOTE:
        raise ReviewError(f"a decision's reason is at most {MAX_NOTE} characters, not {len(why)}")


def _pending(conn: psycopg.Connection, batch_id: str, record_index: int, by: str, why: str) -> ReviewItem:
    check_decision(by, why)
    item = get_item(conn, batch_id, record_index, lock=True)
    if item.status != "pending":
        raise AlreadyDecidedError(
            f"{batch_id} #{record_index} was already {item.status} by {item.decided_by} ({item.decision_note})"
        )
    return item


def flagged_version(conn: psycopg.Connection, item: ReviewItem) -> tuple[dict[str, Any] | None, str | None]:
    """The stored row of the item's key, and why it is not the flagged version (None when it is): a
    newer version replaced it, or none is stored (a day archived out of the hot tier)."""
    row = stored_row(conn, item)
    if row is None:
        table = contract_for(item.source).table
        return (
            None,
            f"no version of it is stored in ops.{table} (an archived day comes back with metrify restore)",
        )
    if row["batch_id"] != item.batch_id:
        return row, f"batch {row['batch_id']} replaced the flagged version"
    return row, None


def show(conn: psycopg.Connection, batch_id: str, record_index: int) -> dict[str, Any]:
    """What a reviewer judges (`metrify review show` and `GET /v1/review/items/{batch_id}/{record_index}`):
    the queue row, the row stored under its key, why that row is not the flagged version where a newer
    one replaced it (a decision then closes the item as superseded), for a rejected item the flagged
    row as the rejection quarantined it, and `context` (review_context.py): why it was flagged with the
    rule's figures, its neighbours in time and, for a meter reading, its interval in the VEE series.
    Raises `UnknownItemError`."""
    item = get_item(conn, batch_id, record_index)
    stored, gone = flagged_version(conn, item)
    letter = quarantined_payload(conn, batch_id, record_index) if item.status == "rejected" else None
    quarantined = json.loads(letter) if letter else None  # a reject writes the row as JSON
    flagged = stored if stored is not None and gone is None else quarantined
    keys = key_values(contract_for(item.source), item.record_key)
    return {
        "item": item.__dict__,
        "stored_row": stored,
        "not_the_flagged_version": None if letter else gone,
        "quarantined_row": quarantined,
        "context": review_context.context(conn, item, keys, flagged),
    }


def _superseded_note(row: dict[str, Any] | None, gone: str | None, why: str) -> str | None:
    """The note that closes an item whose flagged version a newer one replaced (a row of another batch
    is stored), with the reviewer's own reason; None when the flagged version is the stored one or
    none is stored (nothing replaced it)."""
    return f"{SUPERSEDED}: {gone}; {why}" if row is not None and gone is not None else None


def item_meter(item: ReviewItem) -> str | None:
    """The meter the item is about (`ITEM_METER`); None for grid and weather records."""
    if item.source != "meter_readings":
        return None
    return key_values(contract_for(item.source), item.record_key)["meter_id"]


def _meters(item: ReviewItem) -> list[str]:
    """The meter a decision is about (none for grid and weather records)."""
    meter = item_meter(item)
    return [] if meter is None else [meter]


def _audit(
    caller: Caller | None, conn: psycopg.Connection, action: str, item: ReviewItem, affected: int
) -> None:
    """The decision's audit entry (docs/operations.md#audit-log), in the decision's transaction: the
    verdict asked for, and the item as it stands (`status` superseded where it changed nothing)."""
    if caller is not None:
        details = {
            "source": item.source,
            "record_key": item.record_key,
            "status": item.status,
            "note": item.decision_note,
        }
        caller.record(
            conn, action, review_context.audit_target(item.batch_id, item.record_index), details, affected
        )


def approve(
    conn: psycopg.Connection,
    batch_id: str,
    record_index: int,
    by: str,
    why: str,
    cache: Cache | None = None,
    caller: Caller | None = None,
) -> ReviewItem:
    """Keep the flagged reading as stored; only the queue row records the decision (and, once
    committed, the cached results that show it move to a new generation). `caller`: who, for the
    audit log, and the account it was authenticated as, stored with the decision (`decided_account`). A reading whose day left PostgreSQL (archived) is approved as it stands in the lake
    copy: its day is not stamped for a rebuild (nothing stored changed; the marts keep their history)."""
    with conn.transaction():
        item = _pending(conn, batch_id, record_index, by, why)
        row, gone = flagged_version(conn, item)
        closing = _superseded_note(row, gone, why)
        status = SUPERSEDED if closing else "approved"
        item = _decide(conn, item, status, by, closing or why, caller, stored=row is not None)
        _audit(caller, conn, "review.approve", item, 0 if closing else 1)
    conn.commit()
    if cache is not None and not closing:
        cache.bump(_meters(item))
    return item


def reject(
    conn: psycopg.Connection,
    batch_id: str,
    record_index: int,
    by: str,
    why: str,
    cache: Cache | None = None,
    caller: Caller | None = None,
) -> ReviewItem:
    """Move the stored reading to quarantine and rebalance the batch's ledger, in one transaction;
    once committed, the meter's cache entries are invalidated (its latest reading may be older now).

    Where a newer version replaced the flagged one, nothing is deleted: the item is closed as
    superseded, as `approve` does. Refused where no version is stored (an archived day: restore it).
    """
    with conn.transaction():
        item = _pending(conn, batch_id, record_index, by, why)
        row, gone = flagged_version(conn, item)
        if row is None:
            raise ReviewError(f"{item.record_key}: {gone}")
        closing = _superseded_note(row, gone, why)
        deleted = 0  # what the audit entry counts, and whether cached results may now be wrong
        if closing:
            item = _decide(conn, item, SUPERSEDED, by, closing, caller)
        else:
            deleted = _quarantine_flagged(conn, item, row, why)
            item = _decide(conn, item, "rejected", by, why, caller)
        _audit(caller, conn, "review.reject", item, deleted)
    conn.commit()
    if cache is not None and deleted:
        cache.invalidate(_meters(item))
    return item


def _quarantine_flagged(conn: psycopg.Connection, item: ReviewItem, row: dict[str, Any], why: str) -> int:
    """Delete the flagged row (and what was derived from it), quarantine it with the note, and move it
    from accepted to quarantined in its batch's ledger; the rows deleted."""
    contract = contract_for(item.source)
    keys = key_values(contract, item.record_key)
    deleted = 0
    for table in (contract.table, *DERIVED_TABLES.get(item.source, ())):
        deleted += conn.execute(
            sql.SQL("DELETE FROM ops.{} WHERE {}").format(sql.Identifier(table), _key_filter(contract)),
            keys,
        ).rowcount
    # Reasons are comma-joined lists: the note (kept whole as `decision_note`) without commas.
    reason = f"{REJECT_REASON_PREFIX}{why.replace(',', ';')}"
    quarantine(conn, item.source, item.batch_id, [QuarantineRow(item.record_index, json.dumps(row), reason)])
    conn.execute(
        "UPDATE ops.ingest_ledger SET accepted = accepted - 1, quarantined = quarantined + 1, "
        "flagged = flagged - 1 WHERE batch_id = %s",
        (item.batch_id,),
    )
    return deleted


def reopen(
    conn: psycopg.Connection,
    batch_id: str,
    record_index: int,
    by: str,
    why: str,
    cache: Cache | None = None,
    caller: Caller | None = None,
) -> ReviewItem:
    """Take back a decision: the item is pending again, as when it was queued; the audit log keeps
    the decision and this entry (who took it back, why, what it was).

    An approval taken back changes no stored row. A rejection taken back puts the reading back into
    its table as the rejection quarantined it, out of quarantine, and from quarantined back to
    accepted and flagged in its batch's ledger; where a newer version of its key was stored since,
    that one stays (a decision on the item then closes it as superseded). Either way the record's
    day is stamped again, so its series and marts are rebuilt. A superseded item changed nothing,
    and a pending one has no decision: both are refused."""
    check_decision(by, why)
    with conn.transaction():
        item = get_item(conn, batch_id, record_index, lock=True)
        if item.status not in ("approved", "rejected"):
            detail = (
                "is pending: there is no decision to take back"
                if item.status == "pending"
                else f"was closed as {item.status} ({item.decision_note}): it changed no data"
            )
            raise ReviewError(f"{batch_id} #{record_index} {detail}")
        restored = _restore_rejected(conn, item) if item.status == "rejected" else 0
        conn.execute(
            "UPDATE ops.review_queue SET status = 'pending', decided_by = NULL, decided_account = NULL, "
            "decided_at = NULL, decision_note = NULL WHERE batch_id = %s AND record_index = %s",
            (batch_id, record_index),
        )
        if (
            stored_row(conn, item) is not None
        ):  # an approved reading whose day was archived: nothing to rebuild
            contract = contract_for(item.source)
            retouch_day(conn, contract, batch_id, key_values(contract, item.record_key))
        if caller is not None:
            details = {
                "source": item.source,
                "record_key": item.record_key,
                "status": "pending",
                "reopened": item.status,
                "decided_by": item.decided_by,
                "decided_account": item.decided_account,
                "decision_note": item.decision_note,
                "note": why,
            }
            caller.record(
                conn, "review.reopen", review_context.audit_target(batch_id, record_index), details, restored
            )
    conn.commit()
    if cache is not None:
        (cache.invalidate if restored else cache.bump)(_meters(item))
    return get_item(conn, batch_id, record_index)


def _restore_rejected(conn: psycopg.Connection, item: ReviewItem) -> int:
    """Put a rejected reading back as its rejection quarantined it (every column, by PostgreSQL's
    own conversion of the row's JSON), unless a newer version of its key is stored; take it out of
    quarantine and back into its batch's accepted and flagged counts. The rows restored (0 or 1)."""
    letter = quarantined_payload(conn, item.batch_id, item.record_index)
    if letter is None:
        raise ReviewError(
            f"{item.batch_id} #{item.record_index}: its rejected row is no longer in ops.quarantine"
        )
    table = sql.Identifier("ops", contract_for(item.source).table)
    restored = conn.execute(
        sql.SQL(
            "INSERT INTO {t} SELECT * FROM jsonb_populate_record(NULL::{t}, %s::jsonb) ON CONFLICT DO NOTHING"
        ).format(t=table),
        (letter,),
    ).rowcount
    conn.execute(
        "DELETE FROM ops.quarantine WHERE batch_id = %s AND record_index = %s",
        (item.batch_id, item.record_index),
    )
    conn.execute(
        "UPDATE ops.ingest_ledger SET accepted = accepted + 1, quarantined = quarantined - 1, "
        "flagged = flagged + 1 WHERE batch_id = %s",
        (item.batch_id,),
    )
    return restored


def any_rejected(conn: psycopg.Connection, source: str) -> bool:
    """Whether a reviewer ever rejected a record of `source` (the common answer, no, skips the lookup
    by key that would otherwise cost every batch a key per record)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM ops.review_queue WHERE source = %s AND status = 'rejected')",
        (source,),
    ).fetchone()
    return bool(row and row[0])


def rejected_versions(conn: psycopg.Connection, source: str, record_keys: list[str]) -> dict[str, int]:
    """Per natural key: the newest record_version a reviewer rejected (only keys given and rejected).

    A replayed record with a version up to that one is the rejected reading again and stays out; a
    newer version is new data and goes through the rules like any other.
    """
    if not record_keys:
        return {}
    rows = conn.execute(
        "SELECT r.record_key, max((q.payload::jsonb ->> 'record_version')::bigint) "
        "FROM ops.review_queue r JOIN ops.quarantine q USING (batch_id, record_index) "
        "WHERE r.source = %s AND r.status = 'rejected' AND r.record_key = ANY(%s) GROUP BY r.record_key",
        (source, record_keys),
    ).fetchall()
    return {key: int(version) for key, version in rows}
