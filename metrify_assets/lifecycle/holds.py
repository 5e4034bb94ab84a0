"""Legal holds: a scope of data (dataset or all, optionally one meter, a range of days) that no
lifecycle rule may delete or expire, in any tier, until the hold is released.

A hold is recorded in `ops.legal_holds` with its reason and author, and the lake objects of its scope
get an S3 Object Lock legal hold (a local directory enforces the same flag), so not even a bucket
lifecycle rule or a hand-run delete can remove them. Every deleting step of the lifecycle asks
`covering` first; the lock is the second line. A day under a hold also stays in its tier: moving it
would leave a locked superseded version behind.

A hold's days lie from `EARLIEST_DAY` (the first day partition) to at most `HORIZON_DAYS` past today
(data yet to arrive), or it runs on until released (its last day stored as `UNTIL_RELEASED`): a day
outside those bounds is a typo, not a scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg

from metrify_assets.lifecycle.policy import DATASETS, METERED_DATASETS, TIERED_DATASETS, day_span
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.audit import Caller

ALL = "all"
EARLIEST_DAY = date(2000, 1, 1)  # the first day partition (metrify_assets.partitions.DAYS): no data before
HORIZON_DAYS = 366  # how far past today a hold's last day may lie, short of running on until released
UNTIL_RELEASED = date.max  # the last day of a hold that covers every day from its first on
REPORTS_PREFIX = "reports/quality/"  # dated reports; the site-wide docs (Data Docs, dbt docs) are rebuilt
_COLUMNS = (
    "hold_id, dataset, meter_id, first_day, last_day, reason, author, created_at, objects_locked, "
    "released_at, released_by, release_note"
)


@dataclass(frozen=True)
class Hold:
    hold_id: int
    dataset: str
    meter_id: str | None
    first_day: date
    last_day: date
    reason: str
    author: str
    created_at: datetime
    objects_locked: int
    released_at: datetime | None
    released_by: str | None
    release_note: str | None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def covers(self, dataset: str, day: date) -> bool:
        return self.dataset in (ALL, dataset) and self.first_day <= day <= self.last_day

    @property
    def until_released(self) -> bool:
        return self.last_day == UNTIL_RELEASED

    @property
    def scope(self) -> str:
        meter = f" meter {self.meter_id}" if self.meter_id else ""
        if self.until_released:
            days = f"{self.first_day} on (until released)"
        elif self.first_day == self.last_day:
            days = str(self.first_day)
        else:
            days = f"{self.first_day}..{self.last_day}"
        return f"{self.dataset}{meter} {days}"


class HoldError(ValueError):
    """A hold request that cannot be recorded as asked (unknown dataset, empty reason, ...)."""


def validate_scope(
    dataset: str, first_day: date, last_day: date | None, meter_id: str | None, today: date
) -> None:
    """The scope's dataset, meter and days are ones a hold can cover (`last_day` None: until released);
    `HoldError` saying why not otherwise."""
    if dataset != ALL and dataset not in DATASETS:
        raise HoldError(f"unknown dataset {dataset!r}: one of {ALL}, {', '.join(DATASETS)}")
    horizon = today + timedelta(days=HORIZON_DAYS)
    if not EARLIEST_DAY <= first_day <= horizon:
        raise HoldError(
            f"the hold's first day {first_day} is outside {EARLIEST_DAY} (the first day Metrify's data can "
            f"have) .. {horizon} ({HORIZON_DAYS} days past today)"
        )
    if last_day is not None and first_day > last_day:
        raise HoldError(f"the hold's first day {first_day} is after its last day {last_day}")
    if last_day is not None and last_day > horizon:
        raise HoldError(
            f"the hold's last day {last_day} is more than {HORIZON_DAYS} days past today (at most {horizon}); "
            "to hold every day to come, pass --until-released instead of --to"
        )
    if meter_id is not None and dataset not in (ALL, "meter_readings"):
        raise HoldError(f"a meter scope applies to meter_readings (or {ALL}), not {dataset}")


def add(
    conn: psycopg.Connection,
    dataset: str,
    first_day: date,
    last_day: date | None,
    reason: str,
    author: str,
    meter_id: str | None = None,
    caller: Caller | None = None,
) -> Hold:
    """Record a hold (not committed: the caller commits once the lake objects are locked too), with
    its audit entry when a `caller` is given. `last_day` None: the hold runs on until released."""
    validate_scope(dataset, first_day, last_day, meter_id, datetime.now(UTC).date())
    if not reason.strip() or not author.strip():
        raise HoldError("a legal hold needs a reason and an author")
    row = conn.execute(
        f"INSERT INTO ops.legal_holds (dataset, meter_id, first_day, last_day, reason, author) "
        f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (dataset, meter_id, first_day, last_day or UNTIL_RELEASED, reason.strip(), author.strip()),
    ).fetchone()
    assert row is not None
    hold = Hold(*row)
    if caller is not None:
        caller.record(
            conn, "hold.place", f"hold:{hold.hold_id}", {"scope": hold.scope, "reason": hold.reason}, 1
        )
    return hold


def get(conn: psycopg.Connection, hold_id: int) -> Hold | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM ops.legal_holds WHERE hold_id = %s", (hold_id,)).fetchone()
    return Hold(*row) if row else None


def list_holds(conn: psycopg.Connection, include_released: bool = False) -> list[Hold]:
    where = "" if include_released else "WHERE released_at IS NULL"
    rows = conn.execute(f"SELECT {_COLUMNS} FROM ops.legal_holds {where} ORDER BY hold_id").fetchall()
    return [Hold(*r) for r in rows]


def covering(conn: psycopg.Connection, dataset: str, first_day: date, last_day: date) -> list[Hold]:
    """Active holds on `dataset` (or on all data) overlapping the days."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM ops.legal_holds WHERE released_at IS NULL AND dataset IN (%s, %s) "
        "AND first_day <= %s AND last_day >= %s ORDER BY hold_id",
        (dataset, ALL, last_day, first_day),
    ).fetchall()
    return [Hold(*r) for r in rows]


def covering_raw(conn: psycopg.Connection, source: str, first_day: date, last_day: date) -> list[Hold]:
    """Active holds keeping `source`'s raw input that arrived `first_day`..`last_day` (raw batches,
    landing files): one on `raw` over those days, or one on the source that starts on or before the
    last (a batch holds data of its arrival day and earlier)."""
    return covering(conn, "raw", first_day, last_day) + covering(conn, source, date.min, last_day)


def held_meters(holds: list[Hold], day: date) -> set[str]:
    """Meters whose rows of `day` a meter-scoped hold keeps."""
    return {h.meter_id for h in holds if h.meter_id is not None and h.first_day <= day <= h.last_day}


def release(
    conn: psycopg.Connection,
    hold_id: int,
    released_by: str,
    note: str | None = None,
    caller: Caller | None = None,
) -> Hold:
    """Mark the hold released (not committed), with its audit entry when a `caller` is given; the
    lake locks are lifted by `unlock_objects`."""
    if not released_by.strip():
        raise HoldError("releasing a hold needs an author")
    row = conn.execute(
        f"UPDATE ops.legal_holds SET released_at = now(), released_by = %s, release_note = %s "
        f"WHERE hold_id = %s AND released_at IS NULL RETURNING {_COLUMNS}",
        (released_by.strip(), note, hold_id),
    ).fetchone()
    if row is None:
        existing = get(conn, hold_id)
        raise HoldError(f"no hold {hold_id}" if existing is None else f"hold {hold_id} was already released")
    hold = Hold(*row)
    if caller is not None:
        caller.record(conn, "hold.release", f"hold:{hold_id}", {"scope": hold.scope, "note": note}, 1)
    return hold


def scope_keys(
    lake: Lake, dataset: str, first_day: date, last_day: date, meter_id: str | None = None
) -> list[str]:
    """The lake objects of a scope: the tiers' day objects and manifests of the tiered datasets,
    raw batches by arrival day, and the quality reports whose days overlap the scope's. A meter's
    scope (`meter_id`) has no grid or weather objects (`METERED_DATASETS`), as the lifecycle's steps
    do not keep those days for it (`tiers.holding`): a lock there would stop their tier moves."""
    datasets = DATASETS if dataset == ALL else (dataset,)
    sources = TIERED_DATASETS if meter_id is None else METERED_DATASETS
    keys: list[str] = []
    for name in datasets:
        if name in sources:
            prefixes = [f"curated/{name}/"]
        elif name in TIERED_DATASETS:  # grid or weather, in a meter's scope
            continue
        elif name == "raw":
            prefixes = [f"raw/{source}/" for source in sources]
        elif name == "reports":
            prefixes = [REPORTS_PREFIX]
        else:  # quarantine, ops: rows in PostgreSQL, no lake objects
            continue
        for prefix in prefixes:
            for day_prefix in lake.list_day_prefixes(prefix):
                span_first, span_last = day_span(day_prefix)
                if span_first <= last_day and span_last >= first_day:
                    keys.extend(lake.list(day_prefix))
    return keys


def lock_objects(lake: Lake, keys: list[str], on: bool) -> int:
    """Set (or lift) the Object Lock legal hold on each key; returns how many objects it touched."""
    for key in keys:
        lake.set_legal_hold(key, on)
    return len(keys)


def unlock_objects(conn: psycopg.Connection, lake: Lake, hold: Hold) -> int:
    """Lift the locks of a released hold, except on objects another active hold still covers."""
    still = [h for h in list_holds(conn) if h.hold_id != hold.hold_id]
    keys = scope_keys(lake, hold.dataset, hold.first_day, hold.last_day, hold.meter_id)
    kept = set()
    for other in still:
        kept.update(scope_keys(lake, other.dataset, other.first_day, other.last_day, other.meter_id))
    return lock_objects(lake, [k for k in keys if k not in kept], on=False)
