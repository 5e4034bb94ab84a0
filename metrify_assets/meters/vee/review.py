"""A reviewer's decision on a meter reading becomes an edit of its VEE series at once.

The one sequence `metrify review approve|reject` and the API's review routes both run: the decision
(quality/review.py, its own transaction), then, for a meter reading, VEE re-run over the meter-day
that holds it with the reviewer as the edit's author (docs/quality.md#review-of-flagged-records).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
import psycopg

from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.store import VeeRun, revee_reading, run_days
from metrify_assets.quality import review
from metrify_assets.resources.cache import Cache
from metrify_assets.storage.audit import Caller

VERDICTS = ("approve", "reject")
REOPEN = "reopen"  # takes one decision back (never in bulk: a filter selects pending items)
ARCHIVED = (
    "the reading's day left PostgreSQL (archived): VEE is not re-run and its series and the marts keep "
    "what they hold; `metrify restore` brings the day back, and the next `metrify run` rebuilds it "
    "with this decision"
)


@dataclass(frozen=True)
class Decided:
    item: review.ReviewItem
    vee: VeeRun | None  # the meter-day's re-run; None for a source VEE does not cover
    vee_status: str | None  # the interval's VEE status and method after it; None when not in a day
    vee_method: str | None
    # The decision stands, but the meter-day's re-run series failed its GX suite and was not written.
    vee_error: str | None = None
    # Why VEE was not re-run: the reading's day left PostgreSQL (archived); its series stays.
    vee_skipped: str | None = None


def _record(
    conn: psycopg.Connection,
    verdict: str,
    batch_id: str,
    record_index: int,
    by: str,
    note: str,
    cache: Cache | None,
    caller: Caller | None,
) -> tuple[review.ReviewItem, str | None, bool]:
    """The decision (its own transaction, committed), why VEE is not re-run for it (an archived day),
    and whether its meter-day's VEE series must be re-run (a meter reading whose data it changed)."""
    make = {"approve": review.approve, "reject": review.reject, REOPEN: review.reopen}.get(verdict)
    if make is None:
        raise ValueError(f"verdict must be one of {', '.join((*VERDICTS, REOPEN))}, not {verdict!r}")
    item = make(conn, batch_id, record_index, by, note, cache=cache, caller=caller)
    if item.source != "meter_readings" or item.status == review.SUPERSEDED:  # no data changed
        return item, None, False
    if item.status != "rejected" and review.stored_row(conn, item) is None:  # its day was archived
        return item, ARCHIVED, False
    return item, None, True


def _suite_error(run: VeeRun, decision: str, day: str) -> str:
    failed = ", ".join(f"{e.expectation_type}({e.column})" for e in run.suite.failed)
    return (
        f"the {decision} recorded, but the VEE series of {day} failed the GX suite "
        f"{run.suite.suite_name} ({failed}) and was not written; the series stored before stays"
    )


def decide(
    conn: psycopg.Connection,
    verdict: str,
    batch_id: str,
    record_index: int,
    by: str,
    note: str,
    cache: Cache | None = None,
    caller: Caller | None = None,
) -> Decided:
    """Approve or reject the item (or reopen it: take its decision back), then re-run VEE for a
    meter reading's meter-day. Raises `review.ReviewError` (or its `UnknownItemError`) for a decision
    that cannot be made. A decision whose meter-day's new series fails the GX suite
    `vee_meter_readings` is recorded all the same, and the series is not written (the one stored
    before stays): `Decided.vee_error` says so."""
    item, skipped, revee = _record(conn, verdict, batch_id, record_index, by, note, cache, caller)
    if not revee:
        return Decided(item, None, None, None, vee_skipped=skipped)
    meter_id, start = item.record_key.split("|", 1)
    at = pd.Timestamp(start)
    run = revee_reading(conn, meter_id, at, VeeConfig(), cache=cache, caller=caller)
    if not run.written:
        error = _suite_error(run, f"{item.status} decision is", f"{meter_id}'s day")
        return Decided(item, run, None, None, vee_error=error)
    series = run.result.series
    interval = series[series["reading_start"] == at.tz_convert("UTC")]
    if not len(interval):
        return Decided(item, run, None, None)
    return Decided(item, run, str(interval["status"].iloc[0]), str(interval["method"].iloc[0]))


@dataclass
class BulkDecided:
    """What a bulk decision did: every item recorded as a single decision records it (its audit entry,
    reviewer, note, the day stamped for rebuild), then one VEE re-run per local day over the meters
    whose readings it changed that day."""

    verdict: str
    selected: int  # pending items the filter took when the decision started
    decided: int = 0  # approved or rejected
    superseded: int = 0  # closed as superseded: a newer version had replaced the flagged one
    already_decided: int = 0  # decided meanwhile (by someone else): skipped, not decided twice
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # (batch, index, why)
    archived: int = 0  # approved readings whose day left PostgreSQL: VEE not re-run (`ARCHIVED`)
    meter_days: dict[date, list[str]] = field(default_factory=dict)  # re-run by VEE: day -> meters
    vee_audit_rows: int = 0
    vee_errors: list[str] = field(default_factory=list)  # meter-days whose series failed the suite

    def as_json(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "selected": self.selected,
            "decided": self.decided,
            "skipped": {
                "already_decided": self.already_decided,
                "superseded": self.superseded,
                "refused": len(self.refused),
            },
            "refused": [{"batch_id": b, "record_index": i, "error": e} for b, i, e in self.refused],
            "vee_skipped_archived": self.archived,
            "meter_days": [
                {"meter_id": m, "day": day.isoformat()}
                for day, ms in sorted(self.meter_days.items())
                for m in ms
            ],
            "vee_audit_rows": self.vee_audit_rows,
            "vee_errors": self.vee_errors,
        }


def decide_many(
    conn: psycopg.Connection,
    verdict: str,
    items: list[review.Selected],
    by: str,
    note: str,
    cache: Cache | None = None,
    caller: Caller | None = None,
    step: Callable[[], None] | None = None,
) -> BulkDecided:
    """Decide each of `items` (`review.select_pending`) as `decide` does, each in its own transaction
    under the item's row lock, so that one decided meanwhile is skipped and counted (never decided
    twice); then re-run VEE once per local day over the meters whose readings were decided that day,
    not once per item. `step` is called after each item (a progress bar)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    review.check_decision(by, note)
    done = BulkDecided(verdict, len(items))
    days: dict[date, set[str]] = {}
    for selected in items:
        try:
            item, skipped, revee = _record(
                conn, verdict, selected.batch_id, selected.record_index, by, note, cache, caller
            )
        except review.AlreadyDecidedError:
            done.already_decided += 1
        except review.ReviewError as err:  # a reject of a reading whose day was archived
            conn.rollback()
            done.refused.append((selected.batch_id, selected.record_index, str(err)))
        else:
            if item.status == review.SUPERSEDED:
                done.superseded += 1
            else:
                done.decided += 1
            done.archived += skipped is not None
            if revee and selected.meter is not None and selected.day is not None:
                days.setdefault(selected.day, set()).add(selected.meter)
        if step is not None:
            step()
    for day in sorted(days):
        meters = sorted(days[day])
        run = run_days(conn, day, day, VeeConfig(), meter_ids=meters, cache=cache, caller=caller)
        done.meter_days[day] = meters
        done.vee_audit_rows += run.audit_rows
        for meter in run.refused:
            done.vee_errors.append(_suite_error(run, f"{verdict} decisions are", f"{meter}'s day {day}"))
    return done
