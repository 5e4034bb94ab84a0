"""VEE against PostgreSQL: read a run's candidates and history, write the series, days and audit.

Reads are bounded by the run's days: the readings of the days (one either side), the quarantined
meter readings and reviewers' decisions of the batches that touched them (`ops.ingest_days`), the
meters' history in `ops.vee_days` and, only for days with long gaps, their like-day profiles.
The write is one transaction; a run of many meter-days makes several, one per group of meters
(`run_in_groups`), so its memory is a group's. An audit row is written only where an interval's
status, value, method or editor differs from what is stored (or, the first time, where it is not
`actual` or `missing`), so re-running VEE on unchanged input changes nothing. Once it commits, the
cached results of the meters it wrote move to a new generation (docs/api.md#cache).

The GX suite `vee_meter_readings` guards the write: each group's series is validated in memory
first. When it fails, the meters whose own series fail are found by halving the group (the suite's
expectations are per row or per meter and interval, so a set of meters passes exactly when each of
them does), and only theirs is not written (nor their days, nor audit rows): what was stored for
those meters and days stays, the group's other meters are written, and the caller reports the
failure. One odd meter no longer holds back the series of the thousands beside it in its group.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import orjson
import pandas as pd
import psycopg

from metrify_assets.meters.days import LOCAL_TS, day_params, days_between, local_times, readings_of_days_sql
from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.estimation import LIKE_DAY_COLUMNS
from metrify_assets.meters.vee.grid import CANDIDATE_COLUMNS, empty_candidates
from metrify_assets.meters.vee.process import (
    VeeResult,
    finish,
    like_day_requests,
    meter_groups,
    validate_days,
)
from metrify_assets.quality import gx
from metrify_assets.quality.quarantine import DISCARDED
from metrify_assets.resources.cache import Cache
from metrify_assets.storage.audit import Caller
from metrify_assets.storage.days import HOT_GONE
from metrify_assets.storage.frames import read_frame

STORED = (
    "r.meter_id, r.reading_start, r.interval_minutes, r.energy_kwh, r.direction, r.register_kwh, "
    "r.status_flags, r.batch_id"
)


SUITE = "vee_meter_readings"  # the GX suite every series passes before it is written


@dataclass(frozen=True)
class VeeRun:
    result: VeeResult
    audit_rows: int
    unplaced: Mapping[str, int]  # per batch: quarantined meter readings with no usable meter and time
    suite: gx.SuiteResult  # SUITE on `result.series`, validated before the write
    refused: tuple[str, ...] = ()  # meters whose series failed SUITE: not written (the others were)

    @property
    def written(self) -> bool:
        """Whether the whole outcome was stored (no meter's series failed the suite)."""
        return not self.refused

    @property
    def unplaced_quarantined(self) -> int:
        return sum(self.unplaced.values())


def failing_meters(series: pd.DataFrame, meters: list[str]) -> list[str]:
    """The meters of `meters` whose own rows of `series` fail SUITE, found by halving: the suite's
    expectations are per row or per (meter, interval), so a set of meters passes exactly when each
    of its meters does. Validations: about 2 x (failing meters) x log2(meters)."""
    if len(meters) <= 1:
        return list(meters)
    failing: list[str] = []
    half = len(meters) // 2
    for part in (meters[:half], meters[half:]):
        if not gx.validate(SUITE, series[series["meter_id"].isin(part)]).success:
            failing += failing_meters(series, part)
    return failing


def only_meters(result: VeeResult, meters: list[str]) -> VeeResult:
    """`result` restricted to `meters` (series, its masks row for row, and days)."""
    rows = result.series["meter_id"].isin(meters).to_numpy()
    return VeeResult(
        series=result.series[rows],
        days=result.days[result.days["meter_id"].isin(meters)],
        masks=result.masks[rows],
    )


def _meter_filter(meter_ids: list[str] | None) -> str:
    return " AND r.meter_id = ANY(%(meters)s)" if meter_ids is not None else ""


@dataclass(frozen=True)
class Reviewed:
    """The quarantined meter readings and reviewers' decisions of the batches that touched a stretch
    of days, read and parsed once for all its groups of meters: a run holds them whole (they are the
    few records the rules stopped, not the readings)."""

    approvals: pd.DataFrame  # meter_id, reading_start, batch_id, approver: readings a reviewer approved
    quarantined: pd.DataFrame  # in grid.CANDIDATE_COLUMNS, every meter's
    unplaced: Mapping[str, int]  # per batch: quarantined records with no usable meter and time


def read_reviewed(conn: psycopg.Connection, first: date, last: date) -> Reviewed:
    """The decisions and quarantined readings of the batches that touched `first - 1`..`last + 1`."""
    batches = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT batch_id FROM ops.ingest_days WHERE source = 'meter_readings' "
            "AND day BETWEEN %s AND %s",
            (first - timedelta(days=1), last + timedelta(days=1)),
        ).fetchall()
    ]
    decisions = read_frame(
        conn,
        "SELECT batch_id, record_index, record_key, status, decided_by FROM ops.review_queue "
        "WHERE source = 'meter_readings' AND status <> 'pending' AND batch_id = ANY(%s)",
        (batches,),
    )
    approvals = pd.DataFrame(columns=["meter_id", "reading_start", "batch_id", "approver"])
    approved = decisions[decisions["status"] == "approved"] if len(decisions) else decisions
    if len(approved):
        keys = approved["record_key"].str.split("|", n=1, expand=True)
        approvals = pd.DataFrame(
            {
                "meter_id": keys[0].to_numpy(),
                "reading_start": pd.to_datetime(keys[1], utc=True, format="ISO8601").to_numpy(),
                "batch_id": approved["batch_id"].to_numpy(),
                "approver": approved["decided_by"].to_numpy(),
            }
        )
    quarantined, unplaced = _quarantined(conn, batches, decisions)
    return Reviewed(approvals, quarantined, unplaced)


def read_candidates(
    conn: psycopg.Connection, first: date, last: date, meter_ids: list[str] | None, reviewed: Reviewed
) -> pd.DataFrame:
    """Stored and quarantined meter readings (`reviewed`'s, of `meter_ids`) of the local days
    `first - 1`..`last + 1` (the neighbouring days anchor estimates at midnight), with reviewers'
    decisions, in grid.CANDIDATE_COLUMNS."""
    wider = day_params(first - timedelta(days=1), last + timedelta(days=1))
    params: dict[str, Any] = {**wider, "meters": meter_ids}
    stored = read_frame(conn, readings_of_days_sql(STORED) + _meter_filter(meter_ids), params)
    stored["reading_start"] = pd.to_datetime(stored["reading_start"], utc=True)
    stored = stored.assign(origin="stored", ingest_reasons="", review_status=None, reviewer=None)
    if len(reviewed.approvals) and len(stored):
        stored = stored.merge(reviewed.approvals, on=["meter_id", "reading_start", "batch_id"], how="left")
        stored["review_status"] = stored["approver"].notna().map({True: "approved", False: None})
        stored["reviewer"] = stored.pop("approver")
    quarantined = reviewed.quarantined
    if meter_ids is not None:
        quarantined = quarantined[quarantined["meter_id"].isin(set(meter_ids))]
    frames = [f for f in (stored, quarantined) if len(f)]
    if not frames:
        return empty_candidates()
    candidates = pd.concat([f[CANDIDATE_COLUMNS] for f in frames], ignore_index=True)
    for column in ("energy_kwh", "register_kwh", "interval_minutes"):
        candidates[column] = pd.to_numeric(candidates[column], errors="coerce").astype("float64")
    candidates["reading_start"] = pd.to_datetime(candidates["reading_start"], utc=True)
    return candidates


def _quarantined(
    conn: psycopg.Connection, batches: list[str], decisions: pd.DataFrame
) -> tuple[pd.DataFrame, Counter[str]]:
    """Quarantined meter readings of `batches` no replay has accepted (unresolved, or discarded as
    dead letters: read and rejected all the same), parsed from their payloads."""
    rows = conn.execute(
        "SELECT batch_id, record_index, payload, reasons FROM ops.quarantine "
        "WHERE source = 'meter_readings' AND batch_id = ANY(%s) "
        "AND (resolved_at IS NULL OR starts_with(resolved_by, %s))",
        (batches, DISCARDED),
    ).fetchall()
    rejecter = {
        (b, int(i)): by
        for b, i, s, by in decisions[["batch_id", "record_index", "status", "decided_by"]].itertuples(
            index=False
        )
        if s == "rejected"
    }
    records: list[dict[str, Any]] = []
    unplaced: Counter[str] = Counter()
    for batch_id, record_index, payload, reasons in rows:
        try:
            record = orjson.loads(payload)
            meter_id, start = str(record["meter_id"]), pd.Timestamp(record["reading_start"])
            if start.tzinfo is None:
                raise ValueError("timestamp without offset")
            if any("\x00" in v for v in (meter_id, record.get("direction")) if isinstance(v, str)):
                raise ValueError("NUL in text: no PostgreSQL text can hold it")  # malformed:bad_text
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            unplaced[batch_id] += 1  # malformed records: no meter or time to place them on
            continue
        records.append(
            {
                "meter_id": meter_id,
                "reading_start": start.tz_convert("UTC"),
                "interval_minutes": record.get("interval_minutes"),
                "energy_kwh": record.get("energy_kwh"),
                "direction": record.get("direction"),
                "register_kwh": record.get("register_kwh"),
                "status_flags": None,
                "batch_id": batch_id,
                "origin": "quarantined",
                "ingest_reasons": reasons.split(":", 1)[0]
                if reasons.startswith("review_rejected")
                else reasons,
                "review_status": "rejected" if (batch_id, record_index) in rejecter else None,
                "reviewer": rejecter.get((batch_id, record_index)),
            }
        )
    return pd.DataFrame(records, columns=CANDIDATE_COLUMNS), unplaced


def stretch_meters(conn: psycopg.Connection, first: date, last: date, reviewed: Reviewed) -> list[str]:
    """Every meter VEE of `first`..`last` may write or remove rows for, sorted: the registry's, those
    with stored or quarantined readings in the days (a day either side), and those with a series
    already stored for the days (a meter whose readings went still has rows to remove)."""
    wider = day_params(first - timedelta(days=1), last + timedelta(days=1))
    rows = conn.execute(
        f"SELECT meter_id FROM ops.meters UNION {readings_of_days_sql('r.meter_id')} "
        "UNION SELECT meter_id FROM ops.vee_days WHERE local_date BETWEEN %(first_day)s AND %(last_day)s "
        "UNION SELECT meter_id FROM ops.vee_readings WHERE local_date BETWEEN %(first_day)s AND %(last_day)s",
        {**wider, "first_day": first, "last_day": last},
    ).fetchall()
    return sorted({m for (m,) in rows} | set(reviewed.quarantined["meter_id"]))


def empty_days(conn: psycopg.Connection, first: date, last: date) -> list[date]:
    """The local days of `first`..`last` with nothing for VEE: no meter has a reading on them, stored
    or quarantined, and no series is stored for them. VEE would otherwise write every registered
    meter's day as missing, and the marts a 0 kWh row for each, for a day nothing arrived for (one
    that a batch which stored nothing used to mark touched). A day with a stored series is not empty:
    a run must remove what its readings no longer hold."""
    busy = {
        d
        for (d,) in conn.execute(readings_of_days_sql(f"DISTINCT {LOCAL_TS}::date"), day_params(first, last))
    }
    busy |= {
        d
        for (d,) in conn.execute(
            "SELECT DISTINCT local_date FROM ops.vee_days WHERE local_date BETWEEN %s AND %s", (first, last)
        )
    }
    quarantined = read_reviewed(conn, first, last).quarantined
    if len(quarantined):
        ids = quarantined["meter_id"].astype(str)
        zones = read_meters(conn, sorted(set(ids))).set_index("meter_id")["timezone"]
        local = local_times(quarantined["reading_start"], ids.map(zones).fillna("UTC").astype(str))
        busy |= set(local.dt.date)
    return [d for d in days_between(first, last) if d not in busy]


def read_meters(conn: psycopg.Connection, meter_ids: list[str] | None = None) -> pd.DataFrame:
    return read_frame(
        conn,
        "SELECT meter_id, timezone, installed_on FROM ops.meters r WHERE true" + _meter_filter(meter_ids),
        {"meters": meter_ids},
    )


def reporting_from(conn: psycopg.Connection, meters: pd.DataFrame, meter_ids: list[str]) -> pd.Series:
    """Per meter of `meter_ids`, the UTC instant it is expected to report from (`grid.meter_days`):
    the start of its first accepted reading, so its first day is expected from that interval on (a
    meter commissioned at 13:00 has no missing morning). NaT, any day its install date allows: when
    the local day before that reading left PostgreSQL (its earlier readings may have gone with it),
    and for a registered meter none of whose readings was accepted (the registry says it should
    report; its install date is a day, so from that day's midnight). An unregistered meter that has
    none is not in it: expected nowhere. So neither a stray quarantined record of one meter nor a
    run's day before a meter's readings began makes a missing or failed interval. One index probe
    per meter."""
    first = read_frame(
        conn,
        "SELECT m.meter_id, (SELECT min(r.reading_start) FROM ops.meter_readings r "
        "WHERE r.meter_id = m.meter_id) AS first_reading FROM unnest(%s::text[]) AS m(meter_id)",
        (meter_ids,),
    ).dropna()
    zones = meters.set_index("meter_id")["timezone"]
    first_reading = pd.to_datetime(first["first_reading"], utc=True)
    days = local_times(first_reading, first["meter_id"].map(zones).fillna("UTC").astype(str)).dt.date
    gone = {
        d
        for (d,) in conn.execute(
            f"SELECT day FROM ops.lifecycle_days WHERE dataset = 'meter_readings' AND day = ANY(%s) AND {HOT_GONE}",
            (sorted({d - timedelta(days=1) for d in days}),),
        )
    }
    after_gone = days.map(lambda d: d - timedelta(days=1) in gone).to_numpy(dtype=bool)
    start = pd.Series(first_reading.where(~after_gone).to_numpy(), index=first["meter_id"].to_numpy())
    silent = meters.loc[~meters["meter_id"].isin(start.index), "meter_id"].to_numpy()
    return pd.concat([start, pd.Series(pd.NaT, index=silent, dtype=start.dtype)])


def read_history(
    conn: psycopg.Connection, first: date, config: VeeConfig, meter_ids: list[str] | None = None
) -> pd.Series:
    """Average daily net energy per meter over the complete days of the history window before `first`."""
    rows = conn.execute(
        "SELECT meter_id, avg(actual_kwh + estimated_kwh) FROM ops.vee_days r "
        "WHERE local_date >= %(since)s AND local_date < %(first)s AND missing_intervals = 0 "
        "AND failed_intervals = 0 AND NOT estimation_skipped"
        + _meter_filter(meter_ids)
        + " GROUP BY meter_id",
        {"since": first - timedelta(days=config.history_days), "first": first, "meters": meter_ids},
    ).fetchall()
    return pd.Series({m: float(v) for m, v in rows}, dtype="float64")


def read_like_days(conn: psycopg.Connection, requests: pd.DataFrame, config: VeeConfig) -> pd.DataFrame:
    """Per requested meter-day: the mean energy as read per local slot over the same weekday of the
    last `like_day_weeks` weeks, from days with nothing estimated, no outage and not skipped."""
    if requests.empty:
        return pd.DataFrame(columns=LIKE_DAY_COLUMNS)
    return read_frame(
        conn,
        """
        WITH wanted AS (
            SELECT DISTINCT w.meter_id, w.target, w.target - 7 * k AS local_date
            FROM unnest(%(meters)s::text[], %(dates)s::date[]) AS w(meter_id, target),
                 generate_series(1, %(weeks)s) AS k
        )
        SELECT w.meter_id, w.target AS local_date,
               (extract(hour FROM r.reading_start AT TIME ZONE d.timezone) * 60
                + extract(minute FROM r.reading_start AT TIME ZONE d.timezone))::int AS slot,
               avg(r.energy_kwh) AS value
        FROM wanted w
        JOIN ops.vee_days d ON d.meter_id = w.meter_id AND d.local_date = w.local_date
        JOIN ops.vee_readings r ON r.meter_id = w.meter_id AND r.local_date = w.local_date
        WHERE d.estimated_intervals = 0 AND NOT d.outage AND NOT d.estimation_skipped
          AND r.method IN ('actual', 'review_approved')
        GROUP BY 1, 2, 3
        """,
        {
            "meters": requests["meter_id"].astype(str).tolist(),
            "dates": list(requests["local_date"]),
            "weeks": config.like_day_weeks,
        },
    )


def run_days(
    conn: psycopg.Connection,
    first: date,
    last: date,
    config: VeeConfig,
    now: pd.Timestamp | None = None,
    run_id: str | None = None,
    meter_ids: list[str] | None = None,
    cache: Cache | None = None,
    caller: Caller | None = None,
    reviewed: Reviewed | None = None,
) -> VeeRun:
    """VEE the local days `first`..`last` (of `meter_ids`, default all) and store the outcome of every
    meter whose series passes the GX suite (`VeeRun.refused`: those that failed, not written);
    `caller`: the person whose edit this run applies (a reviewer), for the audit log; `reviewed`:
    `read_reviewed` of these days, when the caller runs them in several groups of meters."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    reviewed = reviewed if reviewed is not None else read_reviewed(conn, first, last)
    result = process_days(conn, first, last, config, now, meter_ids, reviewed)
    suite = gx.validate(SUITE, result.series)  # the guard, on the frame before anything is written
    if suite.success:
        audit = write(conn, result, first, last, config.rule_version, run_id, meter_ids, cache, caller)
        return VeeRun(result, audit, reviewed.unplaced, suite)
    meters = sorted(set(result.series["meter_id"].dropna()) | set(result.days["meter_id"]))
    if result.series["meter_id"].isna().any():  # rows no meter owns: nothing can be told apart
        return VeeRun(result, 0, reviewed.unplaced, suite, refused=tuple(meters))
    refused = failing_meters(result.series, meters)
    kept = [m for m in meters if m not in set(refused)]
    audit = 0
    if kept:
        audit = write(
            conn, only_meters(result, kept), first, last, config.rule_version, run_id, kept, cache, caller
        )
    return VeeRun(result, audit, reviewed.unplaced, suite, refused=tuple(refused))


def process_days(
    conn: psycopg.Connection,
    first: date,
    last: date,
    config: VeeConfig,
    now: pd.Timestamp,
    meter_ids: list[str] | None,
    reviewed: Reviewed,
) -> VeeResult:
    """VEE's outcome for the local days `first`..`last` from what is stored, written nowhere."""
    candidates = read_candidates(conn, first, last, meter_ids, reviewed)
    history = read_history(conn, first, config, meter_ids)
    meters = read_meters(conn, meter_ids)
    ids = (
        meter_ids if meter_ids is not None else sorted(set(meters["meter_id"]) | set(candidates["meter_id"]))
    )
    starts = reporting_from(conn, meters, ids)
    validated = validate_days(candidates, meters, first, last, now, history, config, starts)
    return finish(validated, read_like_days(conn, like_day_requests(validated, config), config), config)


@dataclass(frozen=True)
class Group:
    """Which of a stretch's groups of meters a `VeeRun` is."""

    number: int  # from 1
    of: int
    meter_ids: list[str]
    meters_in_stretch: int


def run_in_groups(
    conn: psycopg.Connection,
    first: date,
    last: date,
    config: VeeConfig,
    meter_days_per_group: int,
    now: pd.Timestamp,
    run_id: str | None = None,
    cache: Cache | None = None,
) -> Iterator[tuple[Group, VeeRun]]:
    """`run_days` over `first`..`last` one group of meters at a time (`process.meter_groups`), each
    its own transaction, all as of one `now` (what is due, which days are closed); yields each
    group's run, so a caller that keeps only what it reports holds one group's frames, not the
    stretch's. The quarantined readings and decisions are read once for all groups."""
    reviewed = read_reviewed(conn, first, last)
    meters = stretch_meters(conn, first, last, reviewed)
    groups = meter_groups(meters, (last - first).days + 1, meter_days_per_group)
    for n, meter_ids in enumerate(groups, 1):
        run = run_days(conn, first, last, config, now, run_id, meter_ids, cache, reviewed=reviewed)
        yield Group(n, len(groups), meter_ids, len(meters)), run
        del run  # before the next group's frames are built beside it


SERIES_WRITE = (
    "meter_id, reading_start, local_date, interval_minutes, energy_kwh, direction, original_kwh, status, "
    "method, reasons, batch_id, edited_by, rule_version"
)
DAYS_WRITE = (
    "meter_id, local_date, timezone, interval_minutes, expected_intervals, actual_intervals, "
    "estimated_intervals, edited_intervals, missing_intervals, failed_intervals, flagged_intervals, "
    "actual_kwh, estimated_kwh, outage, estimation_skipped, billing_ready, gate_failures, rule_version"
)


def _none(value: object) -> object:
    return None if value is None or (isinstance(value, float) and value != value) else value


def write(
    conn: psycopg.Connection,
    result: VeeResult,
    first: date,
    last: date,
    rule_version: str,
    run_id: str | None,
    meter_ids: list[str] | None = None,
    cache: Cache | None = None,
    caller: Caller | None = None,
) -> int:
    """Merge the series and days of `first`..`last`, auditing every change -> audit rows written;
    after the commit, new cache generations for every meter whose series or days it rewrote. With a
    `caller` (a person's edit), one `vee.edit` entry in the audit log too, in the same transaction."""
    series = result.series.assign(rule_version=rule_version)
    days = result.days.assign(rule_version=rule_version)
    with conn.cursor() as cur, conn.transaction():
        cur.execute("CREATE TEMP TABLE _vee (LIKE ops.vee_readings INCLUDING DEFAULTS) ON COMMIT DROP")
        with cur.copy(f"COPY _vee ({SERIES_WRITE}) FROM STDIN") as copy:
            for row in series[SERIES_WRITE.split(", ")].itertuples(index=False, name=None):
                copy.write_row(tuple(_none(v) for v in row))
        cur.execute(
            """
            INSERT INTO ops.vee_audit (meter_id, reading_start, local_date, status_before, status_after,
                method, value_before, value_after, reason, rule_version, actor, run_id, batch_before,
                batch_after)
            SELECT n.meter_id, n.reading_start, n.local_date, o.status, n.status, n.method,
                   CASE WHEN o.meter_id IS NULL THEN n.original_kwh ELSE o.energy_kwh END, n.energy_kwh,
                   CASE WHEN n.reasons = '' THEN n.status ELSE n.reasons END, n.rule_version,
                   coalesce(n.edited_by, 'vee'), %(run_id)s, o.batch_id, n.batch_id
            FROM _vee n LEFT JOIN ops.vee_readings o USING (meter_id, reading_start)
            WHERE (o.meter_id IS NULL AND n.status IN ('estimated', 'edited', 'failed'))
               OR (o.meter_id IS NOT NULL AND (o.status, o.energy_kwh, o.method, o.edited_by)
                   IS DISTINCT FROM (n.status, n.energy_kwh, n.method, n.edited_by))
            """,
            {"run_id": run_id},
        )
        audited = cur.rowcount
        # Intervals no longer in a processed meter-day (e.g. the install date moved) go, audited.
        cur.execute(
            """
            WITH gone AS (
                DELETE FROM ops.vee_readings o WHERE o.local_date BETWEEN %(first)s AND %(last)s
                AND (%(meters)s::text[] IS NULL OR o.meter_id = ANY(%(meters)s))
                AND NOT EXISTS (SELECT 1 FROM _vee n WHERE n.meter_id = o.meter_id
                                AND n.reading_start = o.reading_start)
                RETURNING o.*
            )
            INSERT INTO ops.vee_audit (meter_id, reading_start, local_date, status_before, status_after,
                method, value_before, value_after, reason, rule_version, actor, run_id, batch_before)
            SELECT meter_id, reading_start, local_date, status, 'removed', method, energy_kwh, NULL,
                   'not in the meter-day any more', %(version)s, 'vee', %(run_id)s, batch_id
            FROM gone
            RETURNING meter_id
            """,
            {"first": first, "last": last, "meters": meter_ids, "version": rule_version, "run_id": run_id},
        )
        audited += cur.rowcount
        touched = {row[0] for row in cur.fetchall()}
        updates = ", ".join(f"{c} = excluded.{c}" for c in SERIES_WRITE.split(", ")[2:])
        cur.execute(
            f"INSERT INTO ops.vee_readings ({SERIES_WRITE}) SELECT {SERIES_WRITE} FROM _vee "
            f"ON CONFLICT (meter_id, reading_start) DO UPDATE SET {updates}, processed_at = now()"
        )
        cur.execute(
            "DELETE FROM ops.vee_days WHERE local_date BETWEEN %(first)s AND %(last)s "
            "AND (%(meters)s::text[] IS NULL OR meter_id = ANY(%(meters)s)) RETURNING meter_id",
            {"first": first, "last": last, "meters": meter_ids},
        )
        touched.update(row[0] for row in cur.fetchall())
        with cur.copy(f"COPY ops.vee_days ({DAYS_WRITE}) FROM STDIN") as copy:
            for row in days[DAYS_WRITE.split(", ")].itertuples(index=False, name=None):
                copy.write_row(tuple(_none(v) for v in row))
        if caller is not None:
            target = f"meter:{','.join(meter_ids)}" if meter_ids else "meter:*"
            details = {"days": f"{first}..{last}", "rule_version": rule_version}
            caller.record(conn, "vee.edit", target, details, audited)
    conn.commit()
    if cache is not None:
        cache.bump(touched | set(series["meter_id"]) | set(days["meter_id"]))
    return audited


def revee_reading(
    conn: psycopg.Connection,
    meter_id: str,
    reading_start: pd.Timestamp,
    config: VeeConfig,
    now: pd.Timestamp | None = None,
    cache: Cache | None = None,
    caller: Caller | None = None,
) -> VeeRun:
    """Re-run VEE for the one meter-day that holds a reading (after a reviewer's decision on it;
    `caller`: the reviewer, for the audit log)."""
    row = conn.execute(
        "SELECT (%s::timestamptz AT TIME ZONE coalesce((SELECT timezone FROM ops.meters WHERE meter_id = %s), "
        "'UTC'))::date",
        (reading_start.to_pydatetime(), meter_id),
    ).fetchone()
    assert row is not None
    return run_days(conn, row[0], row[0], config, now=now, meter_ids=[meter_id], cache=cache, caller=caller)
